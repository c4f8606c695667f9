"""Where every request enters: one set of limits and one principal, the same for every route.

Before any route runs, a request is checked as a whole: a URL holding a NUL is refused (no id or
parameter holds one, and PostgreSQL's text cannot), the API key names its principal, and the body
is read in full, up to the size limit (a 413 as soon as the declared length or the bytes read pass
it, never after the route has stored anything). The route then gets the body in one piece and a
:class:`RequestContext` under ``scope["rejoinder.context"]``.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from rejoinder.config import Settings
from rejoinder.errors import APIError, InvalidRequest
from rejoinder.http.auth import ANONYMOUS, principal_of
from rejoinder.http.errors import error_response
from rejoinder.request_context import REQUEST_ID_KEY, Limits, RequestContext
from rejoinder.tenant import Tenant

CONTEXT_KEY = "rejoinder.context"
# Routes any client may call without a key: liveness and the API's own description.
# /metrics has its own rule (``metrics_access``); the console's files are public, its data is not.
PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/metrics", "/ui"})
PUBLIC_PREFIX = "/ui/"
TEST_ID_HEADER = "x-rejoinder-test-id"
# Routes that read their own body as it streams, under a limit of their own: a file upload is
# written to the store part by part (files/upload.py, ``files.max_bytes``), never held whole.
STREAMED_BODIES = frozenset({("POST", "/v1/files")})


class RequestTooLarge(APIError):
    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit // (1024 * 1024) or limit} "
                         f"{'MB' if limit >= 1024 * 1024 else 'bytes'}.", code="request_too_large")


class _Disconnected(Exception):
    """The client left before its body arrived: nobody to answer."""


class RequestGate:
    """Pure ASGI middleware (no task group, no ``Request`` object): a few microseconds a request."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.keys = settings.api_keys
        self.limits = Limits(max_body_bytes=settings.max_body_bytes)
        self.test_ids = settings.recording.mode != "live"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._upgrade(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            context = self._context(scope)
            if (scope["method"], scope["path"]) in STREAMED_BODIES:
                scope[CONTEXT_KEY] = context
                await self.app(scope, receive, send)
                return
            body = await self._body(scope, receive)
        except APIError as exc:
            await error_response(exc)(scope, receive, send)
            return
        except _Disconnected:
            return
        scope[CONTEXT_KEY] = context
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # what follows the body: a disconnect, eventually
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _upgrade(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket upgrade gets its context (principal, limits) once, for the connection's life;
        a refused key is the upgrade's HTTP error (401 in OpenAI's shape), so no socket opens."""
        try:
            context = self._context(scope)
        except APIError as exc:
            socket = WebSocket(scope, receive, send)
            if "websocket.http.response" in scope.get("extensions", {}):
                await socket.send_denial_response(error_response(exc))
            else:
                await socket.close(code=1008, reason=exc.message[:120])
            return
        scope[CONTEXT_KEY] = context
        await self.app(scope, receive, send)

    def _context(self, scope: Scope) -> RequestContext:
        if "\x00" in scope["path"] or b"%00" in scope["query_string"]:
            raise InvalidRequest("The request URL contains a NUL character (%00).", code="invalid_value")
        headers = Headers(scope=scope) if self.keys or self.test_ids else None
        path = scope["path"]
        if self.keys and path not in PUBLIC_PATHS and not path.startswith(PUBLIC_PREFIX):
            assert headers is not None
            principal = principal_of(self.keys, headers.get("authorization"))
        else:
            principal = ANONYMOUS  # no keys, or a public route (which owns nothing)
        test_id = headers.get(TEST_ID_HEADER) if headers is not None and self.test_ids else None
        return RequestContext(principal, self.limits, test_id, scope.get(REQUEST_ID_KEY))

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.limits.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    raise RequestTooLarge(limit)
                break
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def request_context(request: Request) -> RequestContext:
    """The context the gate made, as a FastAPI dependency (async on purpose: FastAPI runs a sync
    dependency in a worker thread, a hop on every request)."""
    context: RequestContext = request.scope[CONTEXT_KEY]
    return context


async def principal(request: Request) -> Tenant:
    """The request's tenant, as a FastAPI dependency of the routes that read or write owned objects."""
    context: RequestContext = request.scope[CONTEXT_KEY]
    return context.tenant
