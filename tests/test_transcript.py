"""The transcript a backend reads, built to the rules every backend shares (issue 23).

Against a fake upstream enforcing OpenAI's own tool-order rules: a message the client placed
between a call and its output goes after the outputs, parallel calls are answered in call order,
nothing is lost, and the stored input items keep the client's order. The same for every way the
context arrives: ``previous_response_id``, a conversation, the whole history with store=false;
streamed and not.
"""

from __future__ import annotations

import json
import random
from typing import Any

import openai
import pytest

from rejoinder.backends.chat_templates import reshape
from rejoinder.engine.context import build_messages
from tests import strict_templates as T
from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, calls, text
from tests.helpers import check_stream, sse_events

TOOLS = [{"type": "function", "name": name, "description": name, "strict": False,
          "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}}
         for name in ("get_weather", "get_time")]


def _turn(client: openai.OpenAI, server: Any, stream: bool, **body: Any) -> dict[str, Any]:
    """One turn, streamed or not; the final response as JSON."""
    if stream:
        return check_stream(sse_events(server.url, {"model": MODEL, **body})).model_dump(mode="json")
    return client.responses.create(model=MODEL, **body).model_dump(mode="json")


def _continue(client: openai.OpenAI, how: str, first: dict[str, Any], earlier: list[Any],
              new: list[Any], conv: str | None) -> dict[str, Any]:
    """The body that continues ``first`` with ``new`` input items, the way ``how`` says."""
    if how == "previous_response_id":
        return {"previous_response_id": first["id"], "input": new}
    if how == "conversation":
        return {"conversation": conv, "input": new}
    output = [{k: v for k, v in item.items() if v is not None} for item in first["output"]]
    return {"store": False, "input": [*earlier, *output, *new]}


@pytest.mark.parametrize("how", ["previous_response_id", "conversation", "history"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_message_typed_while_a_tool_runs_goes_after_its_output(
        client: openai.OpenAI, server: Any, upstream: FakeUpstream, how: str, stream: bool) -> None:
    """Issue 23, point 1: ``[user message, function_call_output]`` after a call."""
    upstream.check = T.openai_tool_order
    upstream.queue(calls(("get_weather", {"x": "Paris"})), text("Sunny; no umbrella needed."))
    conv = client.conversations.create().id if how == "conversation" else None
    earlier = [{"role": "user", "content": "Weather in Paris?"}]
    first = _turn(client, server, False, input=earlier, tools=TOOLS, conversation=conv,
                  store=how != "history")
    call = first["output"][0]
    new = [{"role": "user", "content": "Should I take an umbrella?"},
           {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]
    second = _turn(client, server, stream, tools=TOOLS, **_continue(client, how, first, earlier, new, conv))
    assert second["status"] == "completed", second["error"]
    assert len(upstream.requests) == 2  # accepted at once
    sent = upstream.requests[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    assert sent[2] == {"role": "tool", "tool_call_id": call["call_id"], "content": "sunny"}
    assert sent[3]["content"] == "Should I take an umbrella?"
    if how == "previous_response_id":  # the stored input keeps the client's order
        items = client.responses.input_items.list(second["id"], order="asc").data
        assert [i.type for i in items] == ["message", "function_call_output"]
    if how == "conversation":
        items = client.conversations.items.list(conv, order="asc").data  # type: ignore[arg-type]
        assert [i.type for i in items] == ["message", "function_call", "message", "function_call_output",
                                           "message"]


@pytest.mark.parametrize("stream", [False, True])
def test_parallel_calls_answered_out_of_order_with_a_message_between(
        client: openai.OpenAI, server: Any, upstream: FakeUpstream, stream: bool) -> None:
    upstream.check = T.openai_tool_order
    upstream.queue(calls(("get_weather", {"x": "Oslo"}), ("get_time", {"x": "Oslo"})), text("Cold, 9 pm."))
    first = client.responses.create(model=MODEL, input="Oslo?", tools=TOOLS)  # type: ignore[arg-type]
    weather, time = first.output
    assert weather.type == time.type == "function_call"
    second = _turn(client, server, stream, previous_response_id=first.id, tools=TOOLS, input=[
        {"type": "function_call_output", "call_id": time.call_id, "output": "21:00"},
        {"role": "user", "content": "Metric units, please."},
        {"type": "function_call_output", "call_id": weather.call_id, "output": "-3 C"}])
    assert second["status"] == "completed" and len(upstream.requests) == 2
    sent = upstream.requests[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "user"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == [weather.call_id, time.call_id]
    assert [m["content"] for m in sent[2:]] == ["-3 C", "21:00", "Metric units, please."]


# -- nothing lost, whatever the order -------------------------------------------------------------


def _random_items(rnd: random.Random) -> list[dict[str, Any]]:
    """A history as clients send it: messages of every role, and the model's calls with their
    outputs coming in any order, with messages typed among them."""
    items: list[dict[str, Any]] = [{"type": "message", "role": "user", "content": "u0"}]
    n = 0
    for _ in range(rnd.randrange(1, 6)):
        n += 1
        roll = rnd.random()
        if roll < 0.5:
            ids = [f"c{n}_{k}" for k in range(rnd.randrange(1, 4))]
            items += [{"type": "function_call", "call_id": c, "name": "f", "arguments": json.dumps({"c": c})}
                      for c in ids]
            tail: list[dict[str, Any]] = [{"type": "function_call_output", "call_id": c, "output": f"out-{c}"}
                                          for c in ids]
            for k in range(rnd.randrange(3)):
                role = rnd.choice(["user", "developer"])
                tail.insert(rnd.randrange(len(tail) + 1),
                            {"type": "message", "role": role, "content": f"{role[0]}{n}_{k}"})
            if rnd.random() < 0.5:
                rnd.shuffle(tail)
            items += tail
        elif roll < 0.8:
            items.append({"type": "message", "role": "assistant",
                          "content": [{"type": "output_text", "text": f"a{n}", "annotations": []}]})
        else:
            items.append({"type": "message", "role": rnd.choice(["user", "developer"]), "content": f"m{n}"})
    return items


def _texts(messages: list[dict[str, Any]], roles: tuple[str, ...]) -> list[str]:
    out = []
    for m in messages:
        content = m.get("content")
        if m["role"] in roles and content:
            out.extend(part for part in (content if isinstance(content, str) else "").split("\n\n") if part)
        for call in m.get("tool_calls") or []:
            out.append(call["function"]["arguments"])
    return out


def test_nothing_is_lost_and_every_backend_accepts_the_transcript() -> None:
    rnd = random.Random(2323)
    for _ in range(400):
        items = _random_items(rnd)
        messages = build_messages(items, "instructions")
        assert T.openai_tool_order({"messages": messages}) is None, messages
        client_texts = [i["content"] if isinstance(i["content"], str) else i["content"][0]["text"]
                        for i in items if i.get("type") == "message"]
        sent = _texts(messages, ("system", "user", "assistant"))
        assert sorted(sent) == sorted(client_texts + ["instructions"]
                                      + [i["arguments"] for i in items if i["type"] == "function_call"])
        assert sorted(m["content"] for m in messages if m["role"] == "tool") == sorted(
            i["output"] for i in items if i["type"] == "function_call_output")
        # Client messages keep their order among themselves (calls and outputs move, text does not).
        in_order = [t for t in _texts(messages, ("user", "assistant", "system")) if t in client_texts]
        assert in_order == [t for t in client_texts if t in in_order]
        for rules, check in ((["alternate_roles", "short_call_ids"], T.mistral_v03),
                             (["alternate_roles", "no_system_role"], T.gemma)):
            if check is T.gemma and any(m["role"] == "tool" for m in messages):
                continue  # Gemma 2 has no tool role at all
            shaped = reshape(messages, rules)
            assert check({"messages": shaped}) is None, (rules, shaped)
            assert sorted(_texts(shaped, ("system", "user", "assistant"))) == sorted(sent)
            kept = [t for t in _texts(shaped, ("user", "assistant")) if t in client_texts and t[0] in "ua"]
            assert kept == [t for t in client_texts if t in kept]


def test_a_second_output_for_one_call_is_dropped_and_an_unknown_call_refused() -> None:
    from rejoinder.errors import InvalidRequest

    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    out = {"type": "function_call_output", "call_id": "c1", "output": "x"}
    messages = build_messages([{"type": "message", "role": "user", "content": "q"}, call, out, out], None)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    with pytest.raises(InvalidRequest) as info:
        build_messages([out, call], None)
    assert info.value.code == "invalid_function_call_output"
    with pytest.raises(InvalidRequest) as info:
        build_messages([call, {"type": "message", "role": "user", "content": "q"}], None)
    assert info.value.code == "missing_function_call_output"
