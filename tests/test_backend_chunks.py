"""Reading an upstream stream: the fields Rejoinder reads are checked, everything else is kept as it
came (servers bend the schema), and an error payload mid-stream fails the call."""

from __future__ import annotations

import json

import pytest

from rejoinder.backends.chunk import Chunk, MalformedChunk, chunk_from_json, chunks_from_json
from rejoinder.backends.openai_compat import ChunkReader, SSEReader, parse_chunk
from rejoinder.engine.chunks import (
    Finish,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
    batch_deltas,
    deltas,
)
from rejoinder.errors import BackendError

CHUNK = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}


def _text(chunk: Chunk) -> str | None:
    return (chunk.get("choices") or [{}])[0].get("delta", {}).get("content")  # type: ignore[union-attr]


def test_well_formed_chunk_is_kept_whole() -> None:
    extra = {**CHUNK, "system_fingerprint": "fp", "service_tier": "default"}
    chunk = parse_chunk(json.dumps(extra))
    assert chunk == extra  # unknown fields stay: a recording holds the chunk as the server sent it


def test_chunk_that_bends_the_schema_is_still_read() -> None:
    bent = {**CHUNK, "choices": [{"index": None, "delta": {"content": "x"}, "finish_reason": ""}],
            "model": None, "id": 7}
    del bent["created"]
    chunk = parse_chunk(json.dumps(bent))
    assert _text(chunk) == "x" and chunk["choices"][0]["finish_reason"] == ""  # type: ignore[index]


@pytest.mark.parametrize("choices", [
    [{"index": 0, "delta": {"content": 42}}],  # text that is no string
    [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ["x"]}}]}}],
    "not a list",
])
def test_a_field_read_with_the_wrong_type_fails_the_call(choices: object) -> None:
    with pytest.raises(BackendError) as failed:
        parse_chunk(json.dumps({**CHUNK, "choices": choices}))
    assert failed.value.code == "server_error" and "malformed" in failed.value.message


def test_deltas_of_a_chunk() -> None:
    chunk = parse_chunk(json.dumps({**CHUNK, "choices": [{"index": 0, "finish_reason": "tool_calls", "delta": {
        "reasoning_content": "hmm", "content": "a", "tool_calls": [{"index": None, "id": "call_1", "function": {
            "name": "f", "arguments": "{}"}}]}}], "usage": {"prompt_tokens": 3, "completion_tokens": 2,
                                                           "prompt_tokens_details": {"cached_tokens": 1}}}))
    assert list(deltas(chunk)) == [Usage(3, 2, 1, 0), ReasoningDelta("hmm"), TextDelta("a"),
                                   ToolCallDelta(0, "call_1", "f", "{}"), Finish("tool_calls")]


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
    assert [_text(c) for c in first] == ["hi"]
    rest = reader.feed(body[cut:])
    assert [_text(c) for c in rest] == [" there"]  # nothing after [DONE]
    assert reader.end() == [] and reader.error is None


def test_chunk_reader_reads_a_last_event_without_its_blank_line() -> None:
    reader = ChunkReader()
    assert reader.feed(b"data: " + json.dumps(CHUNK).encode()) == []
    assert [_text(c) for c in reader.end()] == ["hi"]


def test_chunk_reader_keeps_the_chunks_before_an_error_payload() -> None:
    reader = ChunkReader()
    chunks = reader.feed(_data(CHUNK) + _data({"error": {"message": "overloaded"}}) + _data(CHUNK))
    assert [_text(c) for c in chunks] == ["hi"]
    assert reader.error is not None and reader.error.code == "server_error"


def _chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {**CHUNK, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_a_burst_is_validated_in_one_call_with_the_same_result() -> None:
    burst = [_chunk({"content": "a"}), _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
             {**CHUNK, "choices": [], "usage": {"prompt_tokens": 1}, "extra": [1, 2]}]
    payloads = [json.dumps(c).encode() for c in burst]
    assert chunks_from_json(payloads) == [chunk_from_json(p) for p in payloads] == burst


@pytest.mark.parametrize("bad", [b'{"choices": "x"}', b'{"error": {"message": "overloaded"}}',
                                 b"{}, {}",  # two values in one payload: the counts would disagree
                                 b"[1", b""])
def test_a_burst_with_one_bad_payload_is_refused(bad: bytes) -> None:
    with pytest.raises(MalformedChunk):
        chunks_from_json([json.dumps(CHUNK).encode(), bad, json.dumps(CHUNK).encode()])


def test_chunk_reader_reads_events_that_are_not_one_data_line() -> None:
    body = (b": keep-alive\n\n" + b"event: chunk\ndata: " + json.dumps(CHUNK).encode() + b"\n\n"
            + b"data:" + json.dumps(_chunk({"content": " a"})).encode() + b"\n\n\n"
            + b'data: {"id": "c1", "choices":\ndata: [{"delta": {"content": " b"}}]}\n\n' + b"data: [DONE]\n\n")
    reader = ChunkReader()
    assert [_text(c) for c in reader.feed(body)] == ["hi", " a", " b"]
    assert reader.done and reader.error is None


@pytest.mark.parametrize("cut", range(1, 40, 3))
def test_chunk_reader_turns_to_lines_at_the_first_carriage_return(cut: int) -> None:
    """A server with CRLF line ends, its first CR arriving after a block read event by event."""
    events = [b"data: " + json.dumps(_chunk({"content": w})).encode() for w in ("one", " two", " three")]
    body = events[0] + b"\n\n" + events[1] + b"\r\n\r\n" + events[2] + b"\r\n\r\ndata: [DONE]\r\n\r\n"
    cut = len(events[0]) + cut
    reader = ChunkReader()
    chunks = reader.feed(body[:cut]) + reader.feed(body[cut:]) + reader.end()
    assert [_text(c) for c in chunks] == ["one", " two", " three"] and reader.done


def test_chunk_reader_keeps_a_burst_up_to_a_payload_with_two_values() -> None:
    reader = ChunkReader()
    chunks = reader.feed(_data(CHUNK) + b"data: {}, {}\n\n" + _data(CHUNK))
    assert [_text(c) for c in chunks] == ["hi"]
    assert reader.error is not None and "malformed" in reader.error.message


def test_batch_deltas_join_each_run_of_one_kind() -> None:
    def call(index: int, arguments: str, call_id: str | None = None, name: str | None = None) -> dict[str, object]:
        return _chunk({"tool_calls": [{"index": index, "id": call_id, "function": {"name": name,
                                                                                  "arguments": arguments}}]})

    burst = [_chunk({"role": "assistant", "content": ""}), _chunk({"reasoning_content": "hm"}),
             _chunk({"reasoning_content": "m"}), _chunk({"content": "one"}), _chunk({"content": " two"}),
             _chunk({"refusal": "no"}), _chunk({"content": " three"}),
             call(0, "", "call_a", "f"), call(0, '{"a"'), call(0, ": 1}"),
             call(1, "{", "call_b", "g"), call(1, "}"), call(0, "late"), _chunk({}, "tool_calls"),
             {**CHUNK, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9}}]
    assert batch_deltas(burst) == [
        ReasoningDelta("hmm"), TextDelta("one two"), RefusalDelta("no"), TextDelta(" three"),
        ToolCallDelta(0, "call_a", "f", '{"a": 1}'), ToolCallDelta(1, "call_b", "g", "{}"),
        ToolCallDelta(0, None, None, "late"), Finish("tool_calls"), Usage(3, 9, 0, 0)]
    # A fragment that gives the call's id (some servers send it late) is not folded into another.
    late_id = [call(0, "", None, "f"), call(0, "{}", "call_x")]
    assert batch_deltas(late_id) == [ToolCallDelta(0, None, "f", ""), ToolCallDelta(0, "call_x", None, "{}")]
    # One chunk: its deltas as they are.
    assert batch_deltas([burst[1]]) == deltas(burst[1])
