"""One ASGI middleware, outermost, for what every HTTP request gets: an ``x-request-id`` on its
response, an access log line, its duration in ``rejoinder_http_request_duration_seconds``, the
``rejoinder_active_streams`` gauge while an event stream is sent, and, with tracing, its server span.

A request's end is when the application returns: for a stream, after its last event. The access
line's principal is the one the gate resolved (``RequestContext``); a route notes the model, or a
principal of its own rule (``/metrics``), on the request's ``RequestRecord`` (``note``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rejoinder.http.gate import CONTEXT_KEY
from rejoinder.observability.hooks import Telemetry
from rejoinder.observability.logs import ACCESS_LOGGER
from rejoinder.request_context import REQUEST_ID_KEY

access_log = logging.getLogger(ACCESS_LOGGER)

RECORD_KEY = "rejoinder.request"
CLIENT_ID_LIMIT = 200  # characters of a client's x-client-request-id kept in the log
UNMATCHED = "unmatched"  # the route label of a request no route took (a 404)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_EVENT_STREAM = b"text/event-stream"


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    principal: str | None = None
    model: str | None = None


def new_request_id() -> str:
    return "req_" + os.urandom(16).hex()


def note(scope: Scope, *, principal: str | None = None, model: str | None = None) -> None:
    """Record who made the request and for which model, for its access line and span."""
    record = scope.get(RECORD_KEY)
    if record is not None:
        if principal is not None:
            record.principal = principal
        if model is not None:
            record.model = model


def route_template(scope: Scope, templates: dict[Any, str]) -> str | None:
    """The template of the route that took the request (``/v1/responses/{response_id}``). FastAPI's
    router names its own routes in the scope (``route``); a plain Starlette route or mount only its
    endpoint, which ``templates`` maps back to the route's template."""
    route = scope.get("route")
    if route is not None:
        return getattr(route, "path_format", None)
    endpoint = scope.get("endpoint")
    return templates.get(endpoint) if endpoint is not None else None


def endpoint_templates(routes: Sequence[Any]) -> dict[Any, str]:
    return {getattr(r, "endpoint", None) or getattr(r, "app", None): r.path_format
            for r in routes if hasattr(r, "path_format")}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class RequestTelemetry:
    """``routes``: the application's routes (``app.router.routes``), for the templates of routes
    that do not name themselves in the scope."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry, routes: Sequence[Any] = ()):
        self.app = app
        self.telemetry = telemetry
        self.routes = routes
        self._templates: dict[Any, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        record = RequestRecord(new_request_id())
        scope[RECORD_KEY] = record
        scope[REQUEST_ID_KEY] = record.request_id
        header = (b"x-request-id", record.request_id.encode())
        metrics = self.telemetry.metrics
        status = 500  # if the application fails before it answers
        streaming = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                for key, value in headers:
                    if key == b"content-type" and value.startswith(_EVENT_STREAM):
                        streaming = True
                        metrics.active_streams.inc()
                headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        spans = self.telemetry.spans
        span = span_token = None
        if spans is not None:
            span, span_token = spans.start_server(scope, record.request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration = time.perf_counter() - started
            if record.principal is None and (context := scope.get(CONTEXT_KEY)) is not None:
                record.principal = context.tenant.principal
            if streaming:
                metrics.active_streams.dec()
            if self._templates is None:  # once the application's routes are all added
                self._templates = endpoint_templates(self.routes)
            route = route_template(scope, self._templates)
            method = scope["method"]
            metrics.observe_http(method if method in _METHODS else "other", route or UNMATCHED, status, duration)
            if access_log.isEnabledFor(logging.INFO):
                _log_access(scope, record, status, duration)
            if span is not None:
                spans.end_server(span, span_token, method, route, status,  # type: ignore[union-attr]
                                 record.principal, record.model)


def _log_access(scope: Scope, record: RequestRecord, status: int, duration: float) -> None:
    client_id = _header(scope, b"x-client-request-id")
    fields: dict[str, Any] = {
        "request_id": record.request_id,
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "duration_ms": round(duration * 1000, 3),
        "client_request_id": client_id[:CLIENT_ID_LIMIT] if client_id is not None else None,
        "model": record.model,
        "principal": record.principal,
        "client": scope["client"][0] if scope.get("client") else None,
    }
    extras = " ".join(f"{k}={fields[k]}" for k in ("request_id", "client_request_id", "model", "principal")
                      if fields[k] is not None)
    # The text line shows the path as it came, percent-encoded: a decoded one may hold a line break.
    raw_path = scope.get("raw_path") or fields["path"].encode()
    access_log.info('%s "%s %s" %d %.1fms %s', fields["client"] or "-", fields["method"],
                    raw_path.decode("latin-1"), status, fields["duration_ms"], extras, extra=fields)
