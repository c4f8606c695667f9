"""The engine: one async generator of typed events per response.

context.py   items -> chat messages           chat_request.py  the upstream request body
chunks.py    backend chunks -> deltas         events.py        item state -> SSE events
loop.py      infer -> run tools -> infer      fold.py          the stream -> the final Response
upstream.py  one step's call to the backend   truncation.py    the oldest items out, to fit
head.py      when a response's head may leave
"""
