"""Reading a JSON body with OpenAI's answer for malformed JSON, and a bound on its nesting."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import Request

from rejoinder.errors import InvalidRequest
from rejoinder.http.gate import CONTEXT_KEY
from rejoinder.request_context import MAX_JSON_DEPTH, RequestContext


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


# A body this large is parsed (and a create validated) on a worker thread: the walk over a long
# history is pure Python that would stall every other request on the event loop for as long
# (10,000 items: ~300 ms); on a thread the loop still gets the GIL every switch interval.
OFF_LOOP_BYTES = 1 << 20


async def json_body(request: Request) -> Any:
    """The body as JSON, within the request's limits (the gate read it whole, within its size)."""
    context: RequestContext = request.scope[CONTEXT_KEY]
    raw = await request.body()
    if len(raw) > OFF_LOOP_BYTES:
        return await asyncio.to_thread(parse_json_body, raw, context.limits.max_json_depth)
    return parse_json_body(raw, context.limits.max_json_depth)


def parse_json_body(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    if not raw:
        raise InvalidRequest("The request body is empty; expected a JSON object.", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):  # orjson stops at 1024 levels
            raise _too_deep(max_depth) from exc
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
            code="invalid_json",
        ) from exc
    # Fewer brackets than the limit cannot nest past it: most bodies skip the walk.
    if isinstance(body, dict | list) and raw.count(b"{") + raw.count(b"[") > max_depth \
            and _depth_exceeds(body, max_depth):
        raise _too_deep(max_depth)
    return body


def _too_deep(max_depth: int) -> InvalidRequest:
    return InvalidRequest(f"The request body nests objects and arrays more than {max_depth} levels deep.",
                          code="invalid_value")
