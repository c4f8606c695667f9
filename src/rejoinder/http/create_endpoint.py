"""``POST /v1/responses`` as a plain ASGI endpoint, taken before FastAPI's middleware and router.

It is the one route on a turn's latency path. FastAPI's middleware stack, routing, ``Request``
object and dependency injection cost ~0.2 ms a request on these 2 vCPUs (request arrival to the
run's start: 0.34 -> 0.16 ms), a fifth of the ~1 ms a stored turn may add over calling the model
directly. ``RejoinderApp`` hands this route straight from uvicorn to ``CreateResponseEndpoint``;
every other route stays in FastAPI. The endpoint is also FastAPI's route for the same path (under
a ``root_path``, say), so there is one implementation, with the same auth and the same errors in
OpenAI's shape.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rejoinder.api.create_response import validate_create
from rejoinder.errors import APIError, InvalidRequest
from rejoinder.http.auth import principal_of
from rejoinder.http.body import parse_json_body
from rejoinder.http.errors import error_response, unexpected_error_response
from rejoinder.http.sse import sse_frames_response, sse_response

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024  # images and files travel inline as data URLs


class RequestTooLarge(APIError):
    status = 413

    def __init__(self) -> None:
        super().__init__(f"The request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB.",
                         code="request_too_large")


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class JSONReply:
    """A non-streamed reply, sent straight to the server as ``fold`` makes it: the head when the
    run starts, the body (its length unknown until then: chunked) once the Response is stored."""

    def __init__(self, send: Send):
        self.send = send
        self.started = False

    async def head(self) -> None:
        self.started = True
        await self.send({"type": "http.response.start", "status": 200,
                         "headers": [(b"content-type", b"application/json")]})

    async def body(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data})


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class CreateResponseEndpoint:
    """Validate, start the response, and answer with its JSON or its event stream."""

    def __init__(self, app: FastAPI):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: Response | None
        reply = JSONReply(send)
        try:
            response = await self._create(scope, receive, reply)
        except APIError as exc:
            response = error_response(exc)
        except Exception:
            log.exception("unhandled error")
            response = unexpected_error_response()
        # Once a reply's head is out, an error can only end the connection (uvicorn closes it).
        if response is not None and not reply.started:
            await response(scope, receive, send)

    async def _create(self, scope: Scope, receive: Receive, reply: JSONReply) -> Response | None:
        """The reply to send; None when the response was sent already (a run that is not streamed
        replies from its own task, see ``ResponsesService.create``)."""
        services = self.app.state.services
        keys = services.settings.api_keys
        owner = principal_of(keys, Headers(scope=scope).get("authorization") if keys else None)
        raw = parse_json_body(await read_body(receive))
        req = validate_create(raw)
        if req.background:
            worker = services.background
            accepted = await worker.submit(raw, req, owner)
            if req.stream:
                return sse_frames_response(worker.follow(accepted["id"], -1))
            return JSONBody(accepted)
        if req.stream:
            return sse_response(await services.responses.stream(req, owner))
        await services.responses.create(req, owner, reply)
        return None


class RejoinderApp(FastAPI):
    """FastAPI, with ``POST /v1/responses`` served before its middleware and router, and a URL
    holding a NUL refused before any route (and so any query) sees it."""

    create_endpoint: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["method"] == "POST" and scope["path"] == "/v1/responses":
                scope["app"] = self
                await self.create_endpoint(scope, receive, send)
                return
            if "\x00" in scope["path"] or b"%00" in scope["query_string"]:
                # No id or parameter holds a NUL (PostgreSQL's text cannot): refused before a query.
                await error_response(InvalidRequest("The request URL contains a NUL character (%00).",
                                                    code="invalid_value"))(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
