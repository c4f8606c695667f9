"""The state of one request (or, later, of one WebSocket connection), passed down explicitly.

The HTTP layer makes a :class:`RequestContext` once it knows who is asking, and hands it to the
service, which hands it to the engine: nothing is read from task-local variables. A WebSocket
connection that makes many responses (issue 19) keeps one context for its life and gets one
:class:`~rejoinder.backends.base.Admission` per response.
"""

from __future__ import annotations

from dataclasses import dataclass

from rejoinder.tenant import Tenant

MAX_BODY_BYTES = 64 * 1024 * 1024  # images and files travel inline as data URLs
# How deep objects and arrays may nest in a request body. A body is stored and sent back as JSON, and
# orjson writes at most 255 levels; JSON Schema validation recurses a Python frame or more per
# level. 64 levels (a schema 30 levels deep) is far beyond OpenAI's own limit of 10 for a schema.
MAX_JSON_DEPTH = 64
# Where the outermost middleware puts the id it gives the request (``x-request-id``), for the gate.
REQUEST_ID_KEY = "rejoinder.request_id"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may send; the same for every route."""

    max_body_bytes: int = MAX_BODY_BYTES
    max_json_depth: int = MAX_JSON_DEPTH


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking, within which limits, the id a test gave it (record/replay's key) and the
    request's own id (``x-request-id``: its log lines carry it)."""

    tenant: Tenant  # every store call the request makes is scoped to it
    limits: Limits = DEFAULT_LIMITS
    test_id: str | None = None
    request_id: str | None = None

    @classmethod
    def of(cls, tenant: Tenant) -> RequestContext:
        """A context for work that no request is waiting on (a background job claimed from the queue)."""
        return cls(tenant)
