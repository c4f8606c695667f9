"""Reading a JSON body with OpenAI's answer for malformed JSON."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from rejoinder.errors import InvalidRequest


async def json_body(request: Request) -> Any:
    return parse_json_body(await request.body())


def parse_json_body(raw: bytes) -> Any:
    if not raw:
        raise InvalidRequest("The request body is empty; expected a JSON object.", code="invalid_json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
            code="invalid_json",
        ) from exc
