"""Reading a JSON body with OpenAI's answer for malformed JSON, and a bound on its nesting."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from rejoinder.errors import InvalidRequest

# How deep objects and arrays may nest in a request body. A body is stored and sent back as JSON, and
# orjson writes at most 255 levels; JSON Schema validation recurses a Python frame or more per
# level. 64 levels (a schema 30 levels deep) is far beyond OpenAI's own limit of 10 for a schema.
MAX_DEPTH = 64


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


async def json_body(request: Request) -> Any:
    return parse_json_body(await request.body())


def parse_json_body(raw: bytes) -> Any:
    if not raw:
        raise InvalidRequest("The request body is empty; expected a JSON object.", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):  # orjson stops at 1024 levels
            raise _too_deep() from exc
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
            code="invalid_json",
        ) from exc
    # Fewer brackets than the limit cannot nest past it: most bodies skip the walk.
    if isinstance(body, dict | list) and raw.count(b"{") + raw.count(b"[") > MAX_DEPTH \
            and _depth_exceeds(body, MAX_DEPTH):
        raise _too_deep()
    return body


def _too_deep() -> InvalidRequest:
    return InvalidRequest(f"The request body nests objects and arrays more than {MAX_DEPTH} levels deep.",
                          code="invalid_value")
