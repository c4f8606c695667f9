"""The streaming protocol for text answers: golden sequences, ids, persistence before the end."""

import httpx
from openai.types.responses import Response

from tests.conftest import MODEL
from tests.fake_upstream import Turn, text
from tests.helpers import check_stream, sse_events, types

TEXT_GOLDEN = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",  # one or more (see ``types``)
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def test_text_golden_sequence(server, upstream):
    upstream.queue(text("one two three"))
    events = sse_events(server.url, {"model": MODEL, "input": "count"})
    assert types(events) == TEXT_GOLDEN
    final = check_stream(events)
    assert final.output_text == "one two three"
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == "one two three"
    assert events[0]["response"]["status"] == "in_progress"
    assert isinstance(events[0]["response"]["created_at"], int)  # integers on the wire, as OpenAI sends
    assert isinstance(events[-1]["response"]["completed_at"], int)
    stored = httpx.get(f"{server.url}/v1/responses/{final.id}").json()
    assert Response.model_validate(stored).output[0].id == final.output[0].id
    assert stored["output"] == events[-1]["response"]["output"]


def test_sdk_stream_and_final_object_agree(client, upstream):
    upstream.queue(text("alpha beta"))
    with client.responses.stream(model=MODEL, input="hi") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text == "alpha beta"
    assert client.responses.retrieve(final.id).output_text == "alpha beta"


def test_reasoning_then_text(server, upstream):
    upstream.queue(Turn(reasoning="think hard", text="done"))
    events = sse_events(server.url, {"model": MODEL, "input": "q"})
    final = check_stream(events)
    assert [o.type for o in final.output] == ["reasoning", "message"]
    assert "response.reasoning_text.delta" in types(events)
    assert final.output[0].content[0].text == "think hard"


def test_max_output_tokens_gives_incomplete(server, upstream):
    upstream.queue(text("cut short", finish="length"))
    events = sse_events(server.url, {"model": MODEL, "input": "q", "max_output_tokens": 16})
    final = check_stream(events)
    assert events[-1]["type"] == "response.incomplete"
    assert final.status == "incomplete"
    assert final.incomplete_details.reason == "max_output_tokens"
    assert final.output[0].status == "incomplete"
    assert upstream.requests[-1]["max_tokens"] == 16


def test_backend_failure_before_stream(server, upstream):
    upstream.queue(Turn(status=500))
    events = sse_events(server.url, {"model": MODEL, "input": "q"})
    final = check_stream(events)
    assert types(events) == ["response.created", "response.in_progress", "response.failed"]
    assert final.status == "failed"
    assert final.error.code == "server_error"
    assert "scripted" not in final.error.message  # upstream text is never leaked
    stored = httpx.get(f"{server.url}/v1/responses/{final.id}").json()
    assert stored["status"] == "failed" and stored["error"]["code"] == "server_error"


def test_backend_failure_mid_stream(server, upstream):
    upstream.queue(Turn(text="partial answer that breaks", break_after=3))
    events = sse_events(server.url, {"model": MODEL, "input": "q"})
    final = check_stream(events)
    assert events[-1]["type"] == "response.failed"
    # the started message was closed properly before the failure
    assert "response.output_item.done" in types(events)
    stored = httpx.get(f"{server.url}/v1/responses/{final.id}").json()
    assert stored["status"] == "failed"
    assert stored["output"][0]["status"] == "incomplete"
    # every chunk sent before the break is kept, however the break and the chunks arrived together
    assert stored["output"][0]["content"][0]["text"] == "partial answer "


def test_rate_limited_backend(server, upstream):
    upstream.queue(Turn(status=429))
    events = sse_events(server.url, {"model": MODEL, "input": "q"})
    assert check_stream(events).error.code == "rate_limit_exceeded"


def test_get_while_streaming_returns_in_progress(server, upstream):
    upstream.queue(text("a b c d e f g h", delay=0.05))
    with httpx.stream("POST", server.url + "/v1/responses",
                      json={"model": MODEL, "input": "q", "stream": True}, timeout=30) as r:
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        import json

        rid = json.loads(first[6:])["response"]["id"]
        mid = httpx.get(f"{server.url}/v1/responses/{rid}").json()
        assert mid["status"] == "in_progress"
        for _ in lines:
            pass
    done = httpx.get(f"{server.url}/v1/responses/{rid}").json()
    assert done["status"] == "completed"


def test_client_disconnect_leaves_consistent_record(server, upstream):
    import json
    import time

    upstream.queue(text(" ".join(f"w{i}" for i in range(40)), delay=0.02))
    with httpx.stream("POST", server.url + "/v1/responses",
                      json={"model": MODEL, "input": "q", "stream": True}, timeout=30) as r:
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        rid = json.loads(first[6:])["response"]["id"]
        next(lines)  # read a little more, then hang up mid-stream
    deadline = time.time() + 20
    while True:
        body = httpx.get(f"{server.url}/v1/responses/{rid}").json()
        if body["status"] != "in_progress" or time.time() > deadline:
            break
        time.sleep(0.05)
    assert body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"].startswith("w0 w1")
    assert body["output"][0]["status"] == "completed"


def test_json_schema_format_survives_the_wire(server, upstream):
    """SDK fields with aliases (``schema``) must go out under their wire names."""
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
              "additionalProperties": False}
    upstream.queue(text('{"a": "b"}'))
    events = sse_events(server.url, {"model": MODEL, "input": "q",
                                     "text": {"format": {"type": "json_schema", "name": "obj", "schema": schema}}})
    final = check_stream(events)
    assert events[-1]["response"]["text"]["format"]["schema"] == schema
    assert "schema_" not in str(events)
    assert final.text.format.schema_ == schema


def test_the_model_request_leaves_before_the_start_row_is_written(server, upstream, monkeypatch):
    """A streamed turn writes its row at start (GET finds it while it streams); the upstream call
    goes out first, so the model works while the row is written. Events keep their order."""
    import asyncio
    import time

    from rejoinder.store.responses import ResponseStore

    seen_by_upstream: list[int] = []
    create = ResponseStore.create

    async def create_after_upstream(self, *args, **kwargs):
        deadline = time.monotonic() + 5
        # The fake upstream records requests on its own thread: polled, as no asyncio.Event spans both.
        while not upstream.requests and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # runs to the deadline if the request waits for this write
        seen_by_upstream.append(len(upstream.requests))
        return await create(self, *args, **kwargs)

    monkeypatch.setattr(ResponseStore, "create", create_after_upstream)
    upstream.queue(text("one two three"))
    events = sse_events(server.url, {"model": MODEL, "input": "count"})
    assert seen_by_upstream == [1]
    assert types(events) == TEXT_GOLDEN
    final = check_stream(events)
    assert httpx.get(f"{server.url}/v1/responses/{final.id}").json()["status"] == "completed"


def test_a_failed_start_write_fails_the_stream_in_sequence(server, upstream, monkeypatch):
    """If the start row cannot be written, the model's answer (already requested) is dropped and
    ``response.failed`` follows ``in_progress`` directly: no event of an answer nobody stores."""
    from rejoinder.store.responses import ResponseStore

    async def broken(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ResponseStore, "create", broken)
    upstream.queue(text("one two three"))
    events = sse_events(server.url, {"model": MODEL, "input": "count"})
    assert types(events) == ["response.created", "response.in_progress", "response.failed"]
    final = check_stream(events)
    assert final.status == "failed" and final.output == [] and final.error.code == "server_error"
