"""Reading an upstream stream: strict and fast for well-formed chunks, lenient for servers that bend
the schema, and an error payload mid-stream fails the call."""

from __future__ import annotations

import json

import pytest

from rejoinder.backends.openai_compat import ChunkReader, SSEReader, parse_chunk
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


def test_sse_reader_joins_multiline_data_and_skips_comments() -> None:
    reader = SSEReader()
    lines = [b": keep-alive", b"", b"event: x\r", b"data: {\"a\":", b"data: 1}\r", b"\r", b"data:[DONE]", b""]
    assert [data for line in lines if (data := reader.feed(line)) is not None] == [b'{"a":\n1}', b"[DONE]"]


def _data(chunk: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def test_chunk_reader_batches_whatever_arrived_and_waits_for_split_lines() -> None:
    second = {**CHUNK, "choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": None}]}
    body = _data(CHUNK) + _data(second) + b"data: [DONE]\n\n" + _data(CHUNK)
    reader = ChunkReader()
    cut = len(_data(CHUNK)) + 7  # the second event arrives in two blocks, split mid-line
    first = reader.feed(body[:cut])
    assert [c.choices[0].delta.content for c in first] == ["hi"]
    rest = reader.feed(body[cut:])
    assert [c.choices[0].delta.content for c in rest] == [" there"]  # nothing after [DONE]
    assert reader.end() == [] and reader.error is None


def test_chunk_reader_reads_a_last_event_without_its_blank_line() -> None:
    reader = ChunkReader()
    assert reader.feed(b"data: " + json.dumps(CHUNK).encode()) == []
    assert [c.choices[0].delta.content for c in reader.end()] == ["hi"]


def test_chunk_reader_keeps_the_chunks_before_an_error_payload() -> None:
    reader = ChunkReader()
    chunks = reader.feed(_data(CHUNK) + _data({"error": {"message": "overloaded"}}) + _data(CHUNK))
    assert [c.choices[0].delta.content for c in chunks] == ["hi"]
    assert reader.error is not None and reader.error.code == "server_error"
