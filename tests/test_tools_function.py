"""Client-side function tools: calls end the turn, the client continues with their outputs."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, ThreadServer, Turn, calls, text
from tests.helpers import check_stream, sse_events
from tests.mcp_server import EXPERIMENT_PROMPT, FUNCTION_TOOLS, SECURITY_PROMPT, run_tool, workflow_model


def _post(server: ThreadServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + "/v1/responses", json={"model": MODEL, **body}, timeout=30)


def _create(server: ThreadServer, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    """One response, as the final object (streamed: the terminal event's, after checking the stream)."""
    if stream:
        events = sse_events(server.url, {"model": MODEL, **body})
        check_stream(events)
        return events[-1]["response"]
    r = _post(server, body)
    assert r.status_code == 200, r.text
    return r.json()


def _calls_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in response["output"] if i["type"] == "function_call"]


def _outputs(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "function_call_output", "call_id": c["call_id"],
             "output": run_tool(c["name"], json.loads(c["arguments"]))} for c in _calls_of(response)]


def _error(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    return r.json()["error"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(("prompt", "expected_calls", "answer"), [
    (SECURITY_PROMPT, ["get_user_id", "get_user_permissions", "check_file_access"], "Result: no"),
    (EXPERIMENT_PROMPT, ["get_experiment_id", "get_experiment_results"], "Result: Yield: 85%"),
], ids=["security", "experiment"])
def test_workflow_continued_with_previous_response_id(
    server: ThreadServer, upstream: FakeUpstream, stream: bool, prompt: str, expected_calls: list[str], answer: str
) -> None:
    upstream.responder = workflow_model
    response = _create(server, {"input": prompt, "tools": FUNCTION_TOOLS}, stream)
    made = []
    while _calls_of(response):
        assert response["status"] == "completed"
        assert [i["type"] for i in response["output"]] == ["function_call"]
        made += [c["name"] for c in _calls_of(response)]
        stored = httpx.get(f"{server.url}/v1/responses/{response['id']}").json()
        assert stored["output"] == response["output"]
        response = _create(server, {"previous_response_id": response["id"], "input": _outputs(response),
                                    "tools": FUNCTION_TOOLS}, stream)
    assert made == expected_calls
    assert response["output"][-1]["content"][0]["text"] == answer
    # Every call reached the model paired with its output, under the call_id the client saw.
    last = upstream.requests[-1]["messages"]
    assert [m["role"] for m in last] == ["user", *["assistant", "tool"] * len(expected_calls)]
    for assistant, tool in zip(last[1::2], last[2::2], strict=True):
        assert tool["tool_call_id"] == assistant["tool_calls"][0]["id"]


def test_workflow_continued_with_whole_history(server: ThreadServer, upstream: FakeUpstream) -> None:
    """``store: false`` and the whole history sent back as input: no server state is needed."""
    upstream.responder = workflow_model
    history: list[dict[str, Any]] = [{"role": "user", "content": SECURITY_PROMPT}]
    made = []
    for _ in range(4):
        response = _create(server, {"input": history, "tools": FUNCTION_TOOLS, "store": False}, stream=False)
        history += response["output"]  # items go back exactly as they came (ids, status and all)
        if not _calls_of(response):
            break
        made += [c["name"] for c in _calls_of(response)]
        history += _outputs(response)
    assert made == ["get_user_id", "get_user_permissions", "check_file_access"]
    assert response["output"][-1]["content"][0]["text"] == "Result: no"
    assert httpx.get(f"{server.url}/v1/responses/{response['id']}").status_code == 404


def test_function_call_ids_consistent_and_tools_sent_explicitly(
    server: ThreadServer, upstream: FakeUpstream
) -> None:
    upstream.queue(calls(("get_user_id", {"username": "charlie"})))
    tools = [{**FUNCTION_TOOLS[0], "strict": None}, {**FUNCTION_TOOLS[1], "strict": False}]
    events = sse_events(server.url, {"model": MODEL, "input": "who", "tools": tools})
    final = check_stream(events)
    added = next(e for e in events if e["type"] == "response.output_item.added")["item"]
    done = next(e for e in events if e["type"] == "response.output_item.done")["item"]
    args_done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    stored = httpx.get(f"{server.url}/v1/responses/{final.id}").json()["output"][0]
    call = final.output[0]
    assert call.type == "function_call"
    assert added["status"] == "in_progress" and done["status"] == "completed" == stored["status"]
    assert added["id"] == done["id"] == call.id == stored["id"] == args_done["item_id"]
    assert added["call_id"] == done["call_id"] == call.call_id == stored["call_id"]
    assert call.call_id.startswith("call_fake0_")  # the backend's own id is the call_id
    assert json.loads(call.arguments) == {"username": "charlie"} == json.loads(stored["arguments"])
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert deltas == args_done["arguments"] == call.arguments
    sent = upstream.requests[0]["tools"]
    assert sent[0] == {"type": "function", "function": {"name": "get_user_id",
                                                        "description": FUNCTION_TOOLS[0]["description"],
                                                        "parameters": FUNCTION_TOOLS[0]["parameters"]}}
    assert sent[1]["function"]["strict"] is False and "strict" not in sent[0]["function"]


def test_parallel_calls_answered_together(server: ThreadServer, upstream: FakeUpstream) -> None:
    upstream.queue(calls(("get_user_id", {"username": "charlie"}), ("get_user_id", {"username": "alice"})),
                   text("charlie and alice"))
    first = _create(server, {"input": "ids of charlie and alice", "tools": FUNCTION_TOOLS}, stream=False)
    assert first["parallel_tool_calls"] is True
    assert "parallel_tool_calls" not in upstream.requests[0]
    fcs = _calls_of(first)
    assert [json.loads(c["arguments"])["username"] for c in fcs] == ["charlie", "alice"]
    assert len({c["call_id"] for c in fcs}) == 2 and len({c["id"] for c in fcs}) == 2
    outputs = list(reversed(_outputs(first)))  # answered out of order: pairing is by call_id
    final = _create(server, {"previous_response_id": first["id"], "input": outputs}, stream=False)
    assert final["output"][0]["content"][0]["text"] == "charlie and alice"
    messages = upstream.requests[1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in messages[1]["tool_calls"]] == [c["call_id"] for c in fcs]
    assert {m["tool_call_id"]: m["content"] for m in messages[2:]} == {
        fcs[0]["call_id"]: "user_11111", fcs[1]["call_id"]: "user_12345"}


def test_parallel_tool_calls_false(server: ThreadServer, upstream: FakeUpstream) -> None:
    """Sent upstream; a backend that still returns two calls is held to one."""
    upstream.queue(calls(("get_user_id", {"username": "charlie"}), ("get_user_id", {"username": "alice"})))
    r = _create(server, {"input": "ids", "tools": FUNCTION_TOOLS, "parallel_tool_calls": False}, stream=True)
    assert upstream.requests[0]["parallel_tool_calls"] is False
    assert r["parallel_tool_calls"] is False
    assert [json.loads(c["arguments"]) for c in _calls_of(r)] == [{"username": "charlie"}]


@pytest.mark.parametrize(("choice", "sent_choice", "sent_tools"), [
    ("auto", None, [t["name"] for t in FUNCTION_TOOLS]),
    ("none", "none", [t["name"] for t in FUNCTION_TOOLS]),
    ("required", "required", [t["name"] for t in FUNCTION_TOOLS]),
    ({"type": "function", "name": "get_user_id"}, {"type": "function", "function": {"name": "get_user_id"}},
     [t["name"] for t in FUNCTION_TOOLS]),
    ({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "get_user_id"},
                                                         {"type": "function", "name": "check_file_access"}]},
     None, ["get_user_id", "check_file_access"]),
    ({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_user_id"}]},
     "required", ["get_user_id"]),
], ids=["auto", "none", "required", "function", "allowed-auto", "allowed-required"])
def test_tool_choice_sent_upstream(
    server: ThreadServer, upstream: FakeUpstream, choice: Any, sent_choice: Any, sent_tools: list[str]
) -> None:
    upstream.queue(text("ok"))
    r = _create(server, {"input": "hi", "tools": FUNCTION_TOOLS, "tool_choice": choice}, stream=False)
    assert r["tool_choice"] == choice
    body = upstream.requests[0]
    assert body.get("tool_choice") == sent_choice
    assert [t["function"]["name"] for t in body["tools"]] == sent_tools


@pytest.mark.parametrize(("choice", "param"), [
    ({"type": "function", "name": "nope"}, "tool_choice.name"),
    ({"type": "function"}, "tool_choice.name"),
    ({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "nope"}]},
     "tool_choice.tools[0].name"),
    ({"type": "allowed_tools", "mode": "sometimes", "tools": []}, "tool_choice.mode"),
    ({"type": "mcp", "server_label": "absent"}, "tool_choice.server_label"),
    ({"type": "file_search"}, "tool_choice.type"),
])
def test_bad_tool_choice_is_400(server: ThreadServer, upstream: FakeUpstream, choice: Any, param: str) -> None:
    err = _error(_post(server, {"input": "hi", "tools": FUNCTION_TOOLS, "tool_choice": choice}))
    assert err["param"] == param
    assert upstream.requests == []


def test_unknown_call_id_is_400(server: ThreadServer, upstream: FakeUpstream) -> None:
    upstream.queue(calls(("get_user_id", {"username": "charlie"})))
    first = _create(server, {"input": "id", "tools": FUNCTION_TOOLS}, stream=False)
    bad = [{"type": "function_call_output", "call_id": "call_nope", "output": "x"}]
    for body in ({"previous_response_id": first["id"], "input": bad},
                 {"input": [{"role": "user", "content": "id"}, *bad]}):
        err = _error(_post(server, {**body, "tools": FUNCTION_TOOLS}))
        assert err["message"] == "No tool call found for function call output with call_id call_nope."
        assert err["param"] == "input"
    assert len(upstream.requests) == 1


def test_missing_output_is_400(server: ThreadServer, upstream: FakeUpstream) -> None:
    upstream.queue(calls(("get_user_id", {"username": "charlie"})))
    first = _create(server, {"input": "id", "tools": FUNCTION_TOOLS}, stream=False)
    err = _error(_post(server, {"previous_response_id": first["id"], "input": "go on"}))
    assert err["message"] == f"No tool output found for function call {_calls_of(first)[0]['call_id']}."


def test_output_as_content_parts(server: ThreadServer, upstream: FakeUpstream) -> None:
    upstream.queue(calls(("get_user_id", {"username": "charlie"})), text("done"))
    first = _create(server, {"input": "id", "tools": FUNCTION_TOOLS}, stream=False)
    parts = [{"type": "input_text", "text": "user_"}, {"type": "input_text", "text": "11111"}]
    out = {"type": "function_call_output", "call_id": _calls_of(first)[0]["call_id"], "output": parts}
    second = _create(server, {"previous_response_id": first["id"], "input": [out]}, stream=False)
    assert second["status"] == "completed"
    assert upstream.requests[1]["messages"][-1] == {"role": "tool", "tool_call_id": out["call_id"],
                                                     "content": "user_11111"}
    items = httpx.get(f"{server.url}/v1/responses/{second['id']}/input_items").json()["data"]
    assert items[0]["output"] == parts


def test_invented_tool_name_is_a_function_call(server: ThreadServer, upstream: FakeUpstream) -> None:
    upstream.queue(calls(("launch_rockets", {"count": 3})))
    r = _create(server, {"input": "go", "tools": FUNCTION_TOOLS}, stream=True)
    assert r["status"] == "completed"
    assert [(c["name"], c["arguments"]) for c in _calls_of(r)] == [("launch_rockets", '{"count": 3}')]


def test_malformed_arguments_pass_through(server: ThreadServer, upstream: FakeUpstream) -> None:
    """The model's arguments are the client's to judge; they go back upstream as they were."""
    upstream.queue(calls(("get_user_id", '{"username": "char')), text("sorry"))
    first = _create(server, {"input": "id", "tools": FUNCTION_TOOLS}, stream=True)
    call = _calls_of(first)[0]
    assert call["arguments"] == '{"username": "char'
    out = {"type": "function_call_output", "call_id": call["call_id"], "output": "invalid arguments"}
    _create(server, {"previous_response_id": first["id"], "input": [out]}, stream=False)
    sent = upstream.requests[1]["messages"][1]["tool_calls"][0]["function"]
    assert sent == {"name": "get_user_id", "arguments": '{"username": "char'}


def test_call_without_arguments_gets_empty_object(server: ThreadServer, upstream: FakeUpstream) -> None:
    upstream.queue(Turn(tool_calls=[("get_user_id", "")]))
    r = _create(server, {"input": "id", "tools": FUNCTION_TOOLS}, stream=True)
    assert _calls_of(r)[0]["arguments"] == "{}"


def test_sdk_round_trip(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    """The official client reads the call and sends its output back."""
    upstream.queue(calls(("get_user_id", {"username": "bob"})), text("bob is user_67890"))
    r = client.responses.create(model=MODEL, input="bob?", tools=FUNCTION_TOOLS)  # type: ignore[arg-type]
    call = r.output[0]
    assert call.type == "function_call"
    r2 = client.responses.create(model=MODEL, previous_response_id=r.id, input=[
        {"type": "function_call_output", "call_id": call.call_id,
         "output": run_tool(call.name, json.loads(call.arguments))}])
    assert r2.output_text == "bob is user_67890"
    assert upstream.requests[1]["messages"][-1]["content"] == "user_67890"


def test_context_pairs_every_call_whatever_the_mix() -> None:
    """Client-side and server-side calls of one turn, in any order, reach the backend paired."""
    from rejoinder.engine.context import build_messages

    def fc(call_id: str) -> dict[str, Any]:
        return {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id, "name": "f", "arguments": "{}"}

    def mcp(item_id: str) -> dict[str, Any]:
        return {"type": "mcp_call", "id": item_id, "server_label": "lab", "name": "m", "arguments": "{}",
                "output": "out", "error": None}

    def fco(call_id: str) -> dict[str, Any]:
        return {"type": "function_call_output", "call_id": call_id, "output": "x"}

    user = {"type": "message", "role": "user", "content": "go"}
    for items in ([user, fc("a"), mcp("m1"), fc("b"), fco("a"), fco("b")],
                  [user, mcp("m1"), fc("a"), fco("a")],
                  [user, mcp("m1"), mcp("m2"), fc("a"), mcp("m3"), fco("a")]):
        messages = build_messages(items, "be brief")
        assert messages[0] == {"role": "system", "content": "be brief"}
        answered = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
        asked = [c["id"] for m in messages for c in m.get("tool_calls") or []]
        assert sorted(answered) == sorted(asked)
        for i, m in enumerate(messages):
            if m.get("tool_calls"):
                following = [n["tool_call_id"] for n in messages[i + 1:i + 1 + len(m["tool_calls"])]]
                assert sorted(following) == sorted(c["id"] for c in m["tool_calls"]), messages
