"""WebSocket framing: every message a ``/v1/responses`` socket sends is made here.

One engine event is one text message, its JSON exactly as the SSE ``data:`` line carries it, with
the ``stream_id`` of the ``response.create`` that asked for it when the client gave one (the SDK's
``Response*Ws*`` types: the SSE event plus that field). Errors are the SDK's ``ResponseWsError``:
``{"type": "error", "status", "error": {"type", "code", "message", "param"}}``.
"""

from __future__ import annotations

from typing import Any

import orjson

from rejoinder.engine.events import Event
from rejoinder.errors import APIError


def _with_lane(data: bytes, stream_id: str | None) -> str:
    if stream_id is None:
        return data.decode()
    # ``data`` is a JSON object: the lane goes in before its closing brace, no re-serialisation.
    return (data[:-1] + b',"stream_id":' + orjson.dumps(stream_id) + b"}").decode()


def event_message(event: Event, stream_id: str | None) -> str:
    """An engine event as one WebSocket message."""
    return _with_lane(event.data, stream_id)


def object_message(body: dict[str, Any], stream_id: str | None = None) -> str:
    """A message the socket makes itself (steering acknowledgements)."""
    return _with_lane(orjson.dumps(body), stream_id)


def error_message(exc: APIError, stream_id: str | None = None) -> str:
    """A refused client event: one ``error`` message; the socket stays open."""
    error = {"type": exc.type, "code": exc.code, "message": exc.message, "param": exc.param}
    return _with_lane(orjson.dumps({"type": "error", "status": exc.status, "error": error}), stream_id)
