"""Compaction: ``POST /v1/responses/compact``, ``context_management`` with ``compact_threshold`` and the
``compaction_trigger`` input item. The summary is the model's (the fake upstream's scripted answer),
sealed in the compaction item, and stands in for the history it covers in every later call."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai

from rejoinder.engine.compaction import SUMMARY_PREFIX, SUMMARY_REQUEST
from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, calls, text
from tests.helpers import check_stream, sse_events

HISTORY: list[dict[str, Any]] = [
    {"type": "message", "role": "user", "content": "Find the bug in parser.py"},
    {"type": "message", "role": "assistant", "content": "SECRET-ASSISTANT-DETAIL: I looked at line 10."},
    {"type": "message", "role": "user", "content": "And fix it"},
]


def _contents(body: dict[str, Any]) -> list[str]:
    return [m["content"] if isinstance(m["content"], str) else json.dumps(m["content"]) for m in body["messages"]
            if m.get("content") is not None]


def test_compact_returns_user_messages_then_one_sealed_compaction_item(client: openai.OpenAI,
                                                                      upstream: FakeUpstream) -> None:
    upstream.queue(text("The user wants parser.py fixed; the bug is on line 10."), text("Fixed."))
    compacted = client.responses.compact(model=MODEL, input=HISTORY)  # type: ignore[arg-type]
    assert compacted.object == "response.compaction"
    kinds = [(i.type, getattr(i, "role", None)) for i in compacted.output]
    assert kinds == [("message", "user"), ("message", "user"), ("compaction", None)]
    blob = compacted.output[-1].encrypted_content  # type: ignore[union-attr]
    assert "line 10" not in blob and len(blob) > 40  # sealed, not plaintext
    assert compacted.usage.input_tokens > 0
    assert _contents(upstream.requests[0])[-1] == SUMMARY_REQUEST

    # the output, sent back with a new message: the summary stands in for what it covers
    again = client.responses.create(model=MODEL, input=[*(i.model_dump(exclude_none=True) for i in compacted.output),
                                                        {"role": "user", "content": "Thanks"}])
    assert again.status == "completed"
    sent = _contents(upstream.requests[-1])
    assert sent[0] == "Find the bug in parser.py" and sent[-1] == "Thanks"
    assert SUMMARY_PREFIX + "The user wants parser.py fixed; the bug is on line 10." in sent
    assert not any("SECRET-ASSISTANT-DETAIL" in c for c in sent)


def test_compact_a_stored_chain(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.queue(text("SECRET-OLD-ANSWER"), text("summary of the chain"), text("ok"))
    first = client.responses.create(model=MODEL, input="Remember the code word.")
    compacted = client.responses.compact(model=MODEL, previous_response_id=first.id)
    assert "SECRET-OLD-ANSWER" in json.dumps(upstream.requests[1]["messages"])  # the chain was summarised
    assert [i.type for i in compacted.output] == ["message", "compaction"]
    client.responses.create(model=MODEL, input=[*(i.model_dump(exclude_none=True) for i in compacted.output),
                                                {"role": "user", "content": "go on"}])
    sent = json.dumps(upstream.requests[-1]["messages"])
    assert "summary of the chain" in sent and "SECRET-OLD-ANSWER" not in sent


def test_tampered_foreign_and_missing_model_are_400(make_server: Any, upstream: FakeUpstream) -> None:
    server = make_server(api_keys={"key-a": "alice", "key-b": "bob"})
    alice = openai.OpenAI(base_url=server.url + "/v1", api_key="key-a", max_retries=0)
    upstream.queue(text("a summary"))
    item = alice.responses.compact(model=MODEL, input=HISTORY).output[-1].model_dump(exclude_none=True)  # type: ignore[arg-type]
    tampered = {**item, "encrypted_content": item["encrypted_content"][:-6] + "AAAAAA"}
    for key, compaction in (("key-a", tampered), ("key-b", item)):
        r = httpx.post(server.url + "/v1/responses", headers={"authorization": f"Bearer {key}"}, timeout=30,
                       json={"model": MODEL, "input": [compaction, {"role": "user", "content": "hi"}]})
        assert r.status_code == 400, r.text
        assert (r.json()["error"]["code"], r.json()["error"]["param"]) == \
            ("invalid_encrypted_content", "input[0].encrypted_content")
    r = httpx.post(server.url + "/v1/responses/compact", headers={"authorization": "Bearer key-a"},
                   json={"input": HISTORY}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"


def test_threshold_compacts_before_the_model_call_and_streams_the_events(server: Any, upstream: FakeUpstream) -> None:
    upstream.queue(text("SUMMARY-OF-LONG"), text("answer"))
    long = [{"type": "message", "role": "user", "content": "context " * 50},
            {"type": "message", "role": "assistant", "content": "OLD-ANSWER " * 600}]
    events = sse_events(server.url, {"model": MODEL, "stream": True, "input": [*long, {"role": "user", "content": "q"}],
                                     "context_management": [{"type": "compaction", "compact_threshold": 1000}]})
    final = check_stream(events)
    kinds = [e["type"] for e in events]
    assert kinds.index("response.compaction.compacting") < kinds.index("response.output_text.delta")
    assert final.output[0].type == "compaction" and final.output[-1].type == "message"
    sent = json.dumps(upstream.requests[-1]["messages"])
    assert "SUMMARY-OF-LONG" in sent and "OLD-ANSWER" not in sent and "context context" in sent

    # below the threshold: no compaction
    small = sse_events(server.url, {"model": MODEL, "stream": True, "input": "short",
                                    "context_management": [{"type": "compaction", "compact_threshold": 1000}]})
    assert "response.compaction.compacting" not in [e["type"] for e in small]


def test_compaction_trigger_item_compacts_now_and_the_chain_continues_compacted(
        client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.queue(text("OLD-ANSWER"), text("SUMMARY-NOW"), text("answer"), text("next"))
    first = client.responses.create(model=MODEL, input="start")
    second = client.responses.create(model=MODEL, previous_response_id=first.id,
                                     input=[{"role": "user", "content": "more"}, {"type": "compaction_trigger"}])
    assert [i.type for i in second.output] == ["compaction", "message"]
    client.responses.create(model=MODEL, previous_response_id=second.id, input="and then?")
    sent = json.dumps(upstream.requests[-1]["messages"])
    assert "SUMMARY-NOW" in sent and "OLD-ANSWER" not in sent and "start" in sent and "more" in sent


def test_thirty_turn_agent_stays_inside_the_window(make_server: Any, upstream: FakeUpstream) -> None:
    """A window of 3,000 tokens (the fake refuses past it), a threshold of 1,500, a tool output of
    ~500 tokens a turn: thirty turns, never context_length_exceeded."""
    window = 3000

    def tokens(body: dict[str, Any]) -> int:
        return len(json.dumps(body["messages"])) // 4

    def check(body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if tokens(body) > window:
            return 400, {"error": {"message": f"This model's maximum context length is {window} tokens.",
                                   "type": "invalid_request_error", "code": "context_length_exceeded"}}
        return None

    def respond(body: dict[str, Any]) -> Any:
        if body["messages"][-1]["content"] == SUMMARY_REQUEST:
            return text(f"summary at {len(body['messages'])} messages")
        return calls(("read", {"page": len(body["messages"])}))

    upstream.check = check
    upstream.responder = respond
    server = make_server()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    tool = {"type": "function", "name": "read", "parameters": {"type": "object", "properties": {}}}
    management = [{"type": "compaction", "compact_threshold": 1500}]
    response = client.responses.create(model=MODEL, input="Read every page.", tools=[tool],  # type: ignore[list-item]
                                       context_management=management)  # type: ignore[arg-type]
    compactions = 0
    for _ in range(30):
        assert response.status == "completed", response.error
        call = response.output[-1]
        assert call.type == "function_call"
        compactions += sum(1 for i in response.output if i.type == "compaction")
        response = client.responses.create(
            model=MODEL, previous_response_id=response.id, tools=[tool],  # type: ignore[list-item]
            context_management=management,  # type: ignore[arg-type]
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "page text " * 200}])
    assert response.status == "completed"
    assert compactions >= 5
    assert max(tokens(r) for r in upstream.requests) <= window


def test_input_tokens_counts_the_summary_not_what_it_covers(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    long = [*HISTORY[:1], {"type": "message", "role": "assistant", "content": "long detail " * 400}, *HISTORY[2:]]
    upstream.queue(text("short summary"))
    compacted = client.responses.compact(model=MODEL, input=long)  # type: ignore[arg-type]
    whole = client.responses.input_tokens.count(model=MODEL, input=long)  # type: ignore[arg-type]
    summed = client.responses.input_tokens.count(
        model=MODEL, input=[i.model_dump(exclude_none=True) for i in compacted.output])  # type: ignore[misc]
    assert summed.input_tokens < whole.input_tokens / 5


def test_store_false_socket_chain_continues_compacted(server: Any, upstream: FakeUpstream) -> None:
    from tests.test_websocket import create, open_socket

    upstream.queue(text("OLD-ANSWER"), text("SUMMARY-WS"), text("compacted answer"), text("last"))
    with open_socket(server) as ws:
        first = check_stream(create(ws, store=False, input="start"))
        second = check_stream(create(ws, store=False, previous_response_id=first.id,
                                     input=[{"role": "user", "content": "more"}, {"type": "compaction_trigger"}]))
        assert [i.type for i in second.output] == ["compaction", "message"]
        check_stream(create(ws, store=False, previous_response_id=second.id, input="and?"))
    sent = json.dumps(upstream.requests[-1]["messages"])
    assert "SUMMARY-WS" in sent and "OLD-ANSWER" not in sent
