"""Reasoning of open models as reasoning items: streamed fields and <think> blocks, summaries,
encrypted reasoning sent back by a stateless client, and reasoning given back to the backend."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rejoinder.engine import chunks as C
from rejoinder.engine.chat_request import replay_reasoning
from rejoinder.engine.reasoning import ThinkSplitter
from tests.conftest import MODEL
from tests.fake_upstream import Turn, calls, text
from tests.helpers import check_stream, sse_events, types


def _post(url: str, body: dict[str, Any], key: str = "test") -> httpx.Response:
    return httpx.post(url + "/v1/responses", json={"model": MODEL, **body}, timeout=30,
                      headers={"Authorization": f"Bearer {key}"})


def test_streamed_reasoning_is_an_item_before_the_message(server: Any, upstream: Any) -> None:
    upstream.queue(Turn(reasoning="The user greets me. I greet back.", text="Hello!"))
    events = sse_events(server.url, {"model": MODEL, "input": "hi"})
    final = check_stream(events)
    assert [o.type for o in final.output] == ["reasoning", "message"]
    assert final.output[0].content[0].text == "The user greets me. I greet back."
    assert final.output[0].summary == [] and final.output[0].encrypted_content is None
    assert "response.reasoning_text.done" in types(events)
    assert not any(e["type"].startswith("response.reasoning_summary") for e in events)
    # The fake backend counts no reasoning tokens: they are estimated from the text, within the output's.
    assert 0 < final.usage.output_tokens_details.reasoning_tokens <= final.usage.output_tokens


def test_a_summary_is_the_reasoning_text(server: Any, upstream: Any) -> None:
    upstream.queue(Turn(reasoning="Two plus two is four.", text="4"))
    events = sse_events(server.url, {"model": MODEL, "input": "2+2?", "reasoning": {"summary": "auto"}})
    final = check_stream(events)
    reasoning = final.output[0]
    assert [s.model_dump() for s in reasoning.summary] == [{"type": "summary_text", "text": "Two plus two is four."}]
    kinds = types(events)
    start = kinds.index("response.reasoning_summary_part.added")
    assert kinds[start - 1] == "response.output_item.added"
    assert kinds.index("response.reasoning_summary_text.done") < kinds.index("response.reasoning_summary_part.done") \
        < kinds.index("response.reasoning_text.done") < kinds.index("response.content_part.added")
    joined = "".join(e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta")
    assert joined == "Two plus two is four."


@pytest.mark.parametrize("mode, answer", [("on", "<think>I should say yes.</think>\n\nYes."),
                                          ("open", "I should say yes.</think>\n\nYes.")])
def test_think_blocks_become_reasoning(make_server: Any, upstream: Any, mode: str, answer: str) -> None:
    server = make_server(models={MODEL: {"base_url": upstream.url + "/v1", "think_tags": mode}})
    upstream.queue(text(answer))
    final = check_stream(sse_events(server.url, {"model": MODEL, "input": "yes?"}))
    assert [o.type for o in final.output] == ["reasoning", "message"]
    assert final.output[0].content[0].text.strip() == "I should say yes."
    assert final.output[1].content[0].text == "Yes."


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 7])
def test_think_splitter_any_chunking(cut: int) -> None:
    source = "  <think>a < b, so </thin b</think>\n\nanswer <think> stays"
    for starts_open, body in ((False, source), (True, source.replace("  <think>", "", 1))):
        splitter = ThinkSplitter(starts_open)
        out: list[C.Delta] = []
        for i in range(0, len(body), cut):
            out += splitter.feed(C.TextDelta(body[i:i + cut]))
        out += splitter.flush()
        assert "".join(d.text for d in out if isinstance(d, C.ReasoningDelta)) == "a < b, so </thin b"
        assert "".join(d.text for d in out if isinstance(d, C.TextDelta)) == "answer <think> stays"
    plain = ThinkSplitter()
    assert plain.feed(C.TextDelta("no thinking")) == [C.TextDelta("no thinking")]


def _round_one(url: str, upstream: Any, key: str = "test") -> dict[str, Any]:
    """A stateless turn that reasons, then calls a tool: its output as the client keeps it."""
    upstream.queue(Turn(reasoning="I need the weather first.", tool_calls=[("weather", {"city": "Paris"})]))
    reply = _post(url, {"input": "Weather in Paris?", "store": False, "include": ["reasoning.encrypted_content"],
                        "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}]}, key)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_encrypted_reasoning_round_trip_store_false(server: Any, upstream: Any) -> None:
    first = _round_one(server.url, upstream)
    reasoning, call = first["output"]
    assert reasoning["encrypted_content"] and "weather" not in reasoning["encrypted_content"]
    for sent_back in ({"type": "reasoning", "summary": [], "encrypted_content": reasoning["encrypted_content"]},
                      reasoning):  # the blob alone (Codex keeps no id), or the whole item
        upstream.queue(text("Sunny."))
        history = [{"role": "user", "content": "Weather in Paris?"}, sent_back, call,
                   {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]
        reply = _post(server.url, {"input": history, "store": False, "include": ["reasoning.encrypted_content"],
                                   "tools": [{"type": "function", "name": "weather"}]})
        assert reply.status_code == 200, reply.text
        assistant = upstream.requests[-1]["messages"][1]
        assert assistant["role"] == "assistant" and assistant["tool_calls"][0]["id"] == call["call_id"]
        assert assistant["reasoning_content"] == "I need the weather first."


def test_tampered_or_foreign_blobs_are_refused(make_server: Any, upstream: Any) -> None:
    server = make_server(api_keys={"sk-alice-0123456789": "alice", "sk-bob-0123456789": "bob"})
    first = _round_one(server.url, upstream, "sk-alice-0123456789")
    reasoning, call = first["output"]
    blob = reasoning["encrypted_content"]
    tampered = blob[:20] + ("A" if blob[20] != "A" else "B") + blob[21:]
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
    for key, sent in (("sk-alice-0123456789", tampered), ("sk-bob-0123456789", blob),
                      ("sk-alice-0123456789", "not a blob")):
        history = [{"role": "user", "content": "Weather?"}, {"type": "reasoning", "id": "rs_mine", "summary": [],
                                                           "encrypted_content": sent}, call, output]
        reply = _post(server.url, {"input": history, "store": False}, key)
        assert reply.status_code == 400, reply.text
        error = reply.json()["error"]
        assert (error["code"], error["param"], error["type"]) == (
            "invalid_encrypted_content", "input[1].encrypted_content", "invalid_request_error")
        assert "rs_mine" in error["message"]


def test_stored_chain_gives_reasoning_back_within_the_turn(server: Any, upstream: Any) -> None:
    upstream.queue(Turn(reasoning="Look it up.", tool_calls=[("weather", {"city": "Oslo"})]))
    tools = [{"type": "function", "name": "weather"}]
    first = _post(server.url, {"input": "Weather in Oslo?", "tools": tools}).json()
    call = first["output"][1]
    upstream.queue(Turn(reasoning="It said snow.", text="Snow."))
    second = _post(server.url, {"previous_response_id": first["id"], "tools": tools, "input": [
        {"type": "function_call_output", "call_id": call["call_id"], "output": "snow"}]}).json()
    assert upstream.requests[-1]["messages"][1]["reasoning_content"] == "Look it up."
    # A new user turn: by default (current_turn) earlier turns' reasoning stays out; all_turns sends it.
    for context, expected in ((None, [None, None]), ("all_turns", ["Look it up.", "It said snow."])):
        upstream.queue(text("ok"))
        reasoning = {"context": context} if context else {}
        reply = _post(server.url, {"previous_response_id": second["id"], "input": "And tomorrow?",
                                   "tools": tools, "reasoning": reasoning})
        assert reply.status_code == 200, reply.text
        sent = [m.get("reasoning_content") for m in upstream.requests[-1]["messages"] if m["role"] == "assistant"]
        assert sent == expected


def test_reasoning_replay_per_backend() -> None:
    messages = [{"role": "user", "content": "q"},
                {"role": "assistant", "content": "a", "reasoning_content": "because"}]
    assert replay_reasoning(messages, "reasoning_content") is messages
    assert replay_reasoning(messages, "reasoning")[1] == {"role": "assistant", "content": "a", "reasoning": "because"}
    assert replay_reasoning(messages, "think_tags")[1] == {"role": "assistant",
                                                           "content": "<think>\nbecause\n</think>\n\na"}
    assert replay_reasoning(messages, "off")[1] == {"role": "assistant", "content": "a"}
    assert messages[1]["reasoning_content"] == "because"  # the transcript itself is not changed


def test_tool_call_turns_keep_working_without_reasoning(server: Any, upstream: Any) -> None:
    upstream.queue(calls(("weather", {"city": "Rome"})))
    reply = _post(server.url, {"input": "Rome?", "include": ["reasoning.encrypted_content"],
                               "tools": [{"type": "function", "name": "weather"}]}).json()
    assert [o["type"] for o in reply["output"]] == ["function_call"]


def test_a_conversation_gives_sealed_reasoning_back(server: Any, upstream: Any) -> None:
    """A reasoning item added to a conversation with only its blob is opened from the history."""
    first = _round_one(server.url, upstream)
    reasoning, call = first["output"]
    conv = httpx.post(server.url + "/v1/conversations", timeout=30, json={"items": [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "reasoning", "id": reasoning["id"], "summary": [],
         "encrypted_content": reasoning["encrypted_content"]}, call]}).json()
    upstream.queue(text("Sunny."))
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "sun"}
    reply = _post(server.url, {"conversation": conv["id"], "tools": [{"type": "function", "name": "weather"}],
                               "input": [output]})
    assert reply.status_code == 200, reply.text
    assert upstream.requests[-1]["messages"][1]["reasoning_content"] == "I need the weather first."
