"""``POST /v1/responses``: validate, start the response, and answer with its JSON or its event stream.

An ordinary route: the gate's limits and principal, FastAPI's routing and the same error handlers
as every other route. What made this route fast before it was one is kept where it lives in the
normal stack: a non-streamed reply's head leaves as soon as the backend accepts the request (the
client reads it while the model works; a refusal before that is the client's HTTP error) and its
body is the terminal event's own bytes, sent from the run's task.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from rejoinder.api.create_response import CreateResponse, validate_create
from rejoinder.engine.loop import ResponseRun
from rejoinder.http.body import OFF_LOOP_BYTES, parse_json_body
from rejoinder.http.gate import CONTEXT_KEY
from rejoinder.http.sse import sse_response
from rejoinder.observability.middleware import note
from rejoinder.request_context import RequestContext


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class _Reply:
    """Where ``fold`` sends a non-streamed reply: the head once the backend accepted the request, the
    body (its length unknown until then: chunked) once the Response is stored."""

    def __init__(self, send: Send):
        self.send = send

    async def head(self) -> None:
        await self.send({"type": "http.response.start", "status": 200,
                         "headers": [(b"content-type", b"application/json")]})

    async def body(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data})


class FoldedReply(Response):
    """A run that is not streamed, replied to from its own task (``ResponsesService.fold``). Once
    the head is out an error can only break the connection off, which the server does."""

    def __init__(self, run: ResponseRun, service: Any):
        self.run = run
        self.service = service
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.service.fold(self.run, _Reply(send))


async def create_response(request: Request) -> Response:
    services = request.app.state.services
    context: RequestContext = request.scope[CONTEXT_KEY]
    body = await request.body()

    def read() -> tuple[Any, CreateResponse]:
        raw = parse_json_body(body, context.limits.max_json_depth)
        return raw, validate_create(raw, services.responses.tools)

    raw, req = await asyncio.to_thread(read) if len(body) > OFF_LOOP_BYTES else read()
    note(request.scope, model=req.model)
    if req.background:
        worker = services.background
        accepted = await worker.submit(raw, req, context)
        if req.stream:
            return sse_response(worker.follow(accepted["id"], -1), headers_first=True)
        return JSONBody(accepted)
    if req.stream:
        return sse_response(await services.responses.stream(req, context))
    return FoldedReply(await services.responses.start(req, context), services.responses)



