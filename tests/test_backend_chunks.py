"""Reading an upstream stream: strict and fast for well-formed chunks, lenient for servers that bend
the schema, and an error payload mid-stream fails the call."""

from __future__ import annotations

import asyncio
import json

import pytest

from rejoinder.backends.openai_compat import parse_chunk, sse_data
from rejoinder.errors import BackendError

CHUNK = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}


def test_well_formed_chunk() -> None:
    chunk = parse_chunk(json.dumps(CHUNK))
    assert chunk.choices[0].delta.content == "hi" and chunk.created == 1


def test_chunk_that_bends_the_schema_is_still_read() -> None:
    bent = {**CHUNK, "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": ""}]}
    del bent["created"]
    chunk = parse_chunk(json.dumps(bent))
    assert chunk.choices[0].delta.content == "x" and chunk.choices[0].finish_reason == ""


@pytest.mark.parametrize("payload", [{"error": {"message": "overloaded"}}, ["not", "an", "object"]])
def test_error_payload_fails_the_call(payload: object) -> None:
    with pytest.raises(BackendError) as failed:
        parse_chunk(json.dumps(payload))
    assert failed.value.code == "server_error" and "overloaded" not in failed.value.message


def test_sse_data_joins_multiline_data_and_skips_comments() -> None:
    async def lines():
        for line in [": keep-alive", "", "data: {\"a\":", "data: 1}", "", "data:[DONE]", ""]:
            yield line

    async def collect() -> list[str]:
        return [d async for d in sse_data(lines())]

    assert asyncio.run(collect()) == ['{"a":\n1}', "[DONE]"]
