"""Server-sent events: the one place events are framed as SSE (``encode``), and the streaming
response that carries them, for a new response's events and for a background response followed
from the store alike. (The non-streamed reply is the terminal event's JSON: engine/fold.py; the
WebSocket's messages: http/ws_frames.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from rejoinder.engine.events import TERMINAL_EVENT_TYPES, Event

_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode(event: Event) -> bytes:
    """One event as an SSE frame: its type, and its JSON as the data line."""
    return b"event: " + event.type.encode() + b"\ndata: " + event.data + b"\n\n"


async def _frames(batches: AsyncIterator[list[Event]]) -> AsyncGenerator[tuple[bytes, bool], None]:
    """Each batch framed, and whether it ends the stream (a terminal event is the last event)."""
    async for batch in batches:
        yield b"".join([encode(event) for event in batch]), batch[-1].type in TERMINAL_EVENT_TYPES


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _EventStreamResponse(StreamingResponse):
    """Starlette's StreamingResponse without its per-response anyio task group (a measurable share
    of a short streamed turn): a plain task watches for the client leaving, and the stream stops
    at the next batch after it left. The run itself goes on regardless (ResponsesService.stream).

    Each write to the client's socket wakes the client, and on these small VMs a wake-up of a
    process on the other vCPU costs more than the write itself. So the headers go out with the first
    batch (``response.created``), not before it, and the batch with the terminal event also ends
    the chunked body: two wake-ups fewer a turn."""

    def __init__(self, frames: AsyncGenerator[tuple[bytes, bool], None], headers_first: bool = False):
        super().__init__(frames, media_type="text/event-stream", headers=_HEADERS)  # type: ignore[arg-type]
        self.frames = frames
        self.headers_first = headers_first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.ensure_future(_disconnect(receive))
        head: Message = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        start: Message | None = head
        try:
            if self.headers_first:
                await send(head)
                start = None
            async for chunk, last in self.frames:
                if gone.done():
                    return
                if start is not None:
                    await send(start)
                    start = None
                await send({"type": "http.response.body", "body": chunk, "more_body": not last})
                if last:
                    return
            if start is not None:
                await send(start)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
            await self.frames.aclose()


def sse_response(batches: AsyncIterator[list[Event]], headers_first: bool = False) -> StreamingResponse:
    """One write per batch of events (see ``ResponsesService.stream``). ``headers_first``: the
    headers leave at once (a followed background response may wait long for its next event)."""
    return _EventStreamResponse(_frames(batches), headers_first)
