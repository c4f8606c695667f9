"""MCP tools run by the server against a real MCP server on loopback (tests/mcp_server.py)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, ThreadServer, Turn, calls, text
from tests.helpers import check_stream, sse_events
from tests.mcp_server import (
    EXPERIMENT_PROMPT,
    FUNCTION_TOOLS,
    SECURITY_PROMPT,
    WORKFLOW_TOOLS,
    McpLog,
    tool_results,
    workflow_model,
)


def assert_paired(messages: list[dict[str, Any]]) -> None:
    """Each assistant message's tool calls are answered by the tool messages right after it."""
    for i, m in enumerate(messages):
        if m["role"] == "assistant" and m.get("tool_calls"):
            answers = []
            for nxt in messages[i + 1:]:
                if nxt["role"] != "tool":
                    break
                answers.append(nxt["tool_call_id"])
            assert sorted(answers) == sorted(c["id"] for c in m["tool_calls"]), messages


def mcp_tool(url: str, **kw: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "lab", "server_url": url, "require_approval": "never", **kw}


def _post(server: ThreadServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + "/v1/responses", json={"model": MODEL, **body}, timeout=30)


def _create(server: ThreadServer, body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    if stream:
        events = sse_events(server.url, {"model": MODEL, **body})
        check_stream(events)
        return events[-1]["response"]
    r = _post(server, body)
    assert r.status_code == 200, r.text
    return r.json()


def _of(response: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [i for i in response["output"] if i["type"] == kind]


def _kinds(response: dict[str, Any]) -> list[str]:
    return [i["type"] for i in response["output"]]


def _offered(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or []]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(("prompt", "expected", "answer"), [
    (SECURITY_PROMPT, [("get_user_id", "user_11111"), ("get_user_permissions", "guest"),
                       ("check_file_access", "no")], "Result: no"),
    (EXPERIMENT_PROMPT, [("get_experiment_id", "exp_003"), ("get_experiment_results", "Yield: 85%")],
     "Result: Yield: 85%"),
], ids=["security", "experiment"])
def test_workflow_runs_server_side(
    server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog, stream: bool,
    prompt: str, expected: list[tuple[str, str]], answer: str,
) -> None:
    upstream.responder = workflow_model
    r = _create(server, {"input": prompt, "tools": [mcp_tool(mcp_server)]}, stream)
    assert r["status"] == "completed"
    assert _kinds(r) == ["mcp_list_tools", *["mcp_call"] * len(expected), "message"]
    listing = _of(r, "mcp_list_tools")[0]
    assert listing["server_label"] == "lab"
    assert {t["name"] for t in listing["tools"]} >= set(WORKFLOW_TOOLS)
    mcp_calls = _of(r, "mcp_call")
    assert [(c["name"], c["output"], c["status"], c["error"]) for c in mcp_calls] == [
        (name, out, "completed", None) for name, out in expected]
    assert r["output"][-1]["content"][0]["text"] == answer
    assert mcp_log.called() == [name for name, _ in expected]
    assert mcp_log.list_calls == 1
    # One inference per step, each seeing every earlier call paired with its result.
    assert len(upstream.requests) == len(expected) + 1
    assert [(n, out) for n, _, out in tool_results(upstream.requests[-1])] == expected
    assert_paired(upstream.requests[-1]["messages"])
    stored = httpx.get(f"{server.url}/v1/responses/{r['id']}").json()
    assert stored["output"] == r["output"]


def test_sse_transport(server: ThreadServer, upstream: FakeUpstream, mcp_sse_server: str, mcp_log: McpLog) -> None:
    upstream.responder = workflow_model
    r = _create(server, {"input": EXPERIMENT_PROMPT, "tools": [mcp_tool(mcp_sse_server)]})
    assert [c["output"] for c in _of(r, "mcp_call")] == ["exp_003", "Yield: 85%"]
    assert mcp_log.list_calls == 1


def test_listing_reused_along_the_chain(
    server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog
) -> None:
    tools = [mcp_tool(mcp_server)]
    upstream.queue(text("hello"), calls(("get_user_id", {"username": "bob"})), text("bob is user_67890"))
    first = _create(server, {"input": "hi", "tools": tools})
    assert _kinds(first) == ["mcp_list_tools", "message"]
    second = _create(server, {"previous_response_id": first["id"], "input": "bob?", "tools": tools}, stream=True)
    assert _kinds(second) == ["mcp_call", "message"]
    assert _of(second, "mcp_call")[0]["output"] == "user_67890"
    assert mcp_log.list_calls == 1
    assert _offered(upstream.requests[1]) == _offered(upstream.requests[0])
    assert set(WORKFLOW_TOOLS) <= set(_offered(upstream.requests[1]))


def test_allowed_tools_and_headers(
    server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog
) -> None:
    upstream.queue(calls(("whoami", {})), text("done"))
    tool = mcp_tool(mcp_server, allowed_tools=["whoami", "get_user_id"], authorization="sekrit",
                    headers={"X-Trace": "t-1"})
    r = _create(server, {"input": "who am i", "tools": [tool]})
    assert _offered(upstream.requests[0]) == ["get_user_id", "whoami"]
    assert _of(r, "mcp_call")[0]["output"] == "Bearer sekrit"
    assert mcp_log.headers[0]["x-trace"] == "t-1"


def _approval_flow(server: ThreadServer, upstream: FakeUpstream, policy: Any, *then: Turn) -> dict[str, Any]:
    upstream.queue(calls(("get_user_id", {"username": "charlie"})), *then)
    return _create(server, {"input": "charlie?", "tools": [mcp_tool(upstream.mcp_url, require_approval=policy)]})


@pytest.fixture
def with_mcp(upstream: FakeUpstream, mcp_server: str) -> FakeUpstream:
    upstream.mcp_url = mcp_server  # type: ignore[attr-defined]
    return upstream


@pytest.mark.parametrize("policy", [
    "always", None, {"always": {"tool_names": ["get_user_id"]}}, {"never": {"tool_names": ["check_file_access"]}},
    {"always": {"tool_names": ["get_user_id"]}, "never": {"tool_names": ["get_user_id"]}},
], ids=["always", "default", "always-list", "unlisted", "always-wins"])
def test_approval_required(server: ThreadServer, with_mcp: FakeUpstream, mcp_log: McpLog, policy: Any) -> None:
    r = _approval_flow(server, with_mcp, policy)
    assert _kinds(r) == ["mcp_list_tools", "mcp_approval_request"]
    request = _of(r, "mcp_approval_request")[0]
    assert (request["server_label"], request["name"], json.loads(request["arguments"])) == (
        "lab", "get_user_id", {"username": "charlie"})
    assert mcp_log.tool_calls == []
    assert r["status"] == "completed"


@pytest.mark.parametrize("policy", [
    "never", {"never": {"tool_names": ["get_user_id"]}},
    {"always": {"tool_names": ["check_file_access"]}, "never": {"tool_names": ["get_user_id"]}},
], ids=["never", "never-list", "both-lists"])
def test_approval_not_required(server: ThreadServer, with_mcp: FakeUpstream, mcp_log: McpLog, policy: Any) -> None:
    r = _approval_flow(server, with_mcp, policy, text("charlie is user_11111"))
    assert _kinds(r) == ["mcp_list_tools", "mcp_call", "message"]
    assert mcp_log.called() == ["get_user_id"]


def test_filter_applies_per_tool_along_a_workflow(
    server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog
) -> None:
    upstream.responder = workflow_model
    policy = {"always": {"tool_names": ["check_file_access"]},
              "never": {"tool_names": ["get_user_id", "get_user_permissions"]}}
    r = _create(server, {"input": SECURITY_PROMPT, "tools": [mcp_tool(mcp_server, require_approval=policy)]})
    assert _kinds(r) == ["mcp_list_tools", "mcp_call", "mcp_call", "mcp_approval_request"]
    assert _of(r, "mcp_approval_request")[0]["name"] == "check_file_access"
    assert mcp_log.called() == ["get_user_id", "get_user_permissions"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_approve_runs_the_call(
    server: ThreadServer, with_mcp: FakeUpstream, mcp_log: McpLog, stream: bool
) -> None:
    first = _approval_flow(server, with_mcp, "always")
    request = _of(first, "mcp_approval_request")[0]
    with_mcp.queue(text("charlie is user_11111"))
    answer = {"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": True}
    second = _create(server, {"previous_response_id": first["id"], "input": [answer],
                              "tools": [mcp_tool(with_mcp.mcp_url, require_approval="always")]}, stream)
    assert _kinds(second) == ["mcp_call", "message"]
    call = _of(second, "mcp_call")[0]
    assert (call["approval_request_id"], call["name"], call["output"]) == (request["id"], "get_user_id",
                                                                            "user_11111")
    assert call["arguments"] == request["arguments"]
    assert mcp_log.called() == ["get_user_id"]
    assert mcp_log.list_calls == 1  # the listing of the first response was reused
    assert tool_results(with_mcp.requests[-1]) == [("get_user_id", {"username": "charlie"}, "user_11111")]
    # Replaying the same approval does not run the call twice.
    with_mcp.queue(text("again"))
    third = _create(server, {"previous_response_id": second["id"], "input": "and now?",
                             "tools": [mcp_tool(with_mcp.mcp_url, require_approval="always")]})
    assert _kinds(third) == ["message"]
    assert mcp_log.called() == ["get_user_id"]


def test_deny_tells_the_model(server: ThreadServer, with_mcp: FakeUpstream, mcp_log: McpLog) -> None:
    first = _approval_flow(server, with_mcp, "always")
    request = _of(first, "mcp_approval_request")[0]
    with_mcp.queue(text("I was not allowed to look that up."))
    answer = {"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": False}
    second = _create(server, {"previous_response_id": first["id"], "input": [answer],
                              "tools": [mcp_tool(with_mcp.mcp_url, require_approval="always")]})
    assert _kinds(second) == ["message"]
    assert mcp_log.tool_calls == []
    results = tool_results(with_mcp.requests[-1])
    assert results == [("get_user_id", {"username": "charlie"}, "The user denied this tool call.")]


def test_unknown_approval_request_is_400(server: ThreadServer, with_mcp: FakeUpstream) -> None:
    first = _approval_flow(server, with_mcp, "always")
    answer = {"type": "mcp_approval_response", "approval_request_id": "mcpr_nope", "approve": True}
    r = _post(server, {"previous_response_id": first["id"], "input": [answer],
                       "tools": [mcp_tool(with_mcp.mcp_url)]})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "input[0].approval_request_id"


def test_tool_that_raises(server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog) -> None:
    upstream.queue(calls(("explode", {"reason": "test"})), text("the tool failed"))
    r = _create(server, {"input": "boom", "tools": [mcp_tool(mcp_server)]}, stream=True)
    assert r["status"] == "completed"
    call = _of(r, "mcp_call")[0]
    assert call["status"] == "failed" and call["output"] is None
    assert call["error"]["type"] == "mcp_tool_execution_error"
    assert "explode" in call["error"]["content"][0]["text"]
    assert r["output"][-1]["content"][0]["text"] == "the tool failed"
    (_, _, fed_back), = tool_results(upstream.requests[-1])
    assert fed_back.startswith("Error: ") and "explode" in fed_back


def test_slow_tool_times_out(
    make_server: Callable[..., ThreadServer], upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog
) -> None:
    """``mcp_timeout`` bounds a call, not connecting or listing: a listing slower than the call
    limit still succeeds (and a loaded machine's slow connect does not fail the response)."""
    server = make_server(mcp_timeout=0.5)
    mcp_log.list_delay = 0.6
    upstream.queue(calls(("slow", {"seconds": 1.5})), text("too slow"))
    r = _create(server, {"input": "wait", "tools": [mcp_tool(mcp_server)]})
    assert _of(r, "mcp_list_tools")[0]["tools"]
    call = _of(r, "mcp_call")[0]
    assert call["status"] == "failed"
    assert call["error"]["type"] == "mcp_protocol_error" and "timed out after 0.5s" in call["error"]["message"]
    assert r["status"] == "completed" and r["output"][-1]["content"][0]["text"] == "too slow"


def test_slow_listing_hits_the_connect_timeout(
    make_server: Callable[..., ThreadServer], upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog
) -> None:
    server = make_server(mcp_connect_timeout=0.3)
    mcp_log.list_delay = 1.0
    body = {"model": MODEL, "input": "hi", "tools": [mcp_tool(mcp_server)]}
    r = httpx.post(server.url + "/v1/responses", json=body, timeout=30)
    assert r.status_code == 424, r.text
    assert r.json()["error"]["message"] == "Error retrieving tool list from MCP server 'lab'."
    assert upstream.requests == []


def test_calls_of_one_turn_run_concurrently(
    server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog
) -> None:
    upstream.queue(calls(("slow", {"seconds": 0.2}), ("slow", {"seconds": 0.2}), ("slow", {"seconds": 0.2})),
                   text("rested"))
    r = _create(server, {"input": "rest", "tools": [mcp_tool(mcp_server)]})
    assert [c["output"] for c in _of(r, "mcp_call")] == ["slept 0.2"] * 3
    assert mcp_log.max_running == 3
    assert_paired(upstream.requests[1]["messages"])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_server_down_is_424(server: ThreadServer, upstream: FakeUpstream, stream: bool) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/mcp"
    body = {"model": MODEL, "input": "hi", "tools": [mcp_tool(url, server_label="gone")], "stream": stream}
    r = httpx.post(server.url + "/v1/responses", json=body, timeout=30)
    assert r.status_code == 424
    err = r.json()["error"]
    assert err["type"] == "external_connector_error"
    assert err["message"] == "Error retrieving tool list from MCP server 'gone'."
    assert err["param"] == "tools"
    assert upstream.requests == []
    assert httpx.get(server.url + "/v1/responses").json()["data"] == []


def test_malformed_arguments_from_the_model(
    server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog
) -> None:
    upstream.queue(calls(("get_user_id", '{"username": "char')), calls(("get_user_id", "[1, 2]")),
                   text("gave up"))
    r = _create(server, {"input": "id", "tools": [mcp_tool(mcp_server)]}, stream=True)
    bad = _of(r, "mcp_call")
    assert [c["arguments"] for c in bad] == ['{"username": "char', "[1, 2]"]
    assert all(c["status"] == "failed" and c["error"]["type"] == "mcp_protocol_error" for c in bad)
    assert mcp_log.tool_calls == []
    assert r["output"][-1]["content"][0]["text"] == "gave up"


def test_invented_name_becomes_function_call(
    server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog
) -> None:
    upstream.queue(calls(("get_user_idd", {"username": "charlie"})))
    r = _create(server, {"input": "id", "tools": [mcp_tool(mcp_server)]}, stream=True)
    assert _kinds(r) == ["mcp_list_tools", "function_call"]
    assert _of(r, "function_call")[0]["name"] == "get_user_idd"
    assert mcp_log.tool_calls == []


def test_mixed_mcp_and_function_in_one_turn(
    server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog
) -> None:
    notify = {"type": "function", "name": "notify_admin", "parameters": {"type": "object", "properties": {}}}
    tools = [mcp_tool(mcp_server, allowed_tools=["get_user_id"]), notify]
    upstream.queue(calls(("get_user_id", {"username": "alice"}), ("notify_admin", {})), text("alice done"))
    first = _create(server, {"input": "alice", "tools": tools}, stream=True)
    assert _kinds(first) == ["mcp_list_tools", "mcp_call", "function_call"]
    assert _of(first, "mcp_call")[0]["output"] == "user_12345"
    assert _offered(upstream.requests[0]) == ["notify_admin", "get_user_id"]
    fc = _of(first, "function_call")[0]
    out = {"type": "function_call_output", "call_id": fc["call_id"], "output": "notified"}
    second = _create(server, {"previous_response_id": first["id"], "input": [out], "tools": tools})
    assert _kinds(second) == ["message"]
    messages = upstream.requests[1]["messages"]
    assert_paired(messages)
    assert [(n, out) for n, _, out in tool_results(upstream.requests[1])] == [
        ("get_user_id", "user_12345"), ("notify_admin", "notified")]
    assert mcp_log.called() == ["get_user_id"]


def test_same_name_as_function_is_prefixed(
    server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog
) -> None:
    tools = [FUNCTION_TOOLS[0], mcp_tool(mcp_server, allowed_tools=["get_user_id"])]
    upstream.queue(calls(("lab__get_user_id", {"username": "bob"})), text("ok"))
    r = _create(server, {"input": "bob", "tools": tools})
    assert _offered(upstream.requests[0]) == ["get_user_id", "lab__get_user_id"]
    assert _of(r, "mcp_call")[0]["name"] == "get_user_id" and mcp_log.called() == ["get_user_id"]
    assert upstream.requests[1]["messages"][1]["tool_calls"][0]["function"]["name"] == "lab__get_user_id"


def test_max_tool_calls(server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog) -> None:
    """Calls beyond the budget are ignored, and server-side tools are then no longer offered."""
    upstream.queue(calls(("get_user_id", {"username": "alice"}), ("get_user_id", {"username": "bob"})))
    upstream.responder = workflow_model
    r = _create(server, {"input": SECURITY_PROMPT, "tools": [mcp_tool(mcp_server)], "max_tool_calls": 1})
    assert r["max_tool_calls"] == 1
    assert _kinds(r) == ["mcp_list_tools", "mcp_call", "message"]
    assert mcp_log.called() == ["get_user_id"]
    assert _offered(upstream.requests[1]) == []
    assert r["status"] == "completed"


def test_iteration_guard(
    make_server: Callable[..., ThreadServer], upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog
) -> None:
    server = make_server(max_tool_iterations=3)
    upstream.responder = lambda body: calls(("get_user_id", {"username": "alice"}))
    r = _create(server, {"input": "loop", "tools": [mcp_tool(mcp_server)]}, stream=True)
    assert r["status"] == "incomplete"
    assert r["incomplete_details"] == {"reason": "max_messages"}
    assert len(upstream.requests) == 3 and len(mcp_log.tool_calls) == 3
    assert httpx.get(f"{server.url}/v1/responses/{r['id']}").json()["status"] == "incomplete"


def test_forced_mcp_choice_is_released_after_the_call(
    server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog
) -> None:
    upstream.responder = workflow_model
    choice = {"type": "mcp", "server_label": "lab", "name": "get_user_id"}
    r = _create(server, {"input": SECURITY_PROMPT, "tools": [mcp_tool(mcp_server)], "tool_choice": choice})
    assert upstream.requests[0]["tool_choice"] == {"type": "function", "function": {"name": "get_user_id"}}
    assert all("tool_choice" not in body for body in upstream.requests[1:])
    assert mcp_log.called() == ["get_user_id", "get_user_permissions", "check_file_access"]
    assert r["status"] == "completed"


def test_required_choice_is_released_after_the_call(
    server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog
) -> None:
    upstream.queue(calls(("get_user_id", {"username": "bob"})), text("done"))
    _create(server, {"input": "bob", "tools": [mcp_tool(mcp_server)], "tool_choice": "required"})
    assert [b.get("tool_choice") for b in upstream.requests] == ["required", None]


@pytest.mark.parametrize(("tool", "param"), [
    ({"type": "mcp", "server_label": "x", "connector_id": "connector_gmail"}, "tools[0].connector_id"),
    ({"type": "mcp", "server_label": "x", "server_url": "ftp://host/mcp"}, "tools[0].server_url"),
    ({"type": "mcp", "server_label": "x", "server_url": "http://h/mcp", "defer_loading": True},
     "tools[0].defer_loading"),
])
def test_unsupported_mcp_options_are_400(server: ThreadServer, tool: dict[str, Any], param: str) -> None:
    r = _post(server, {"input": "hi", "tools": [tool]})
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_a_queued_background_job_is_prepared_once(
    make_server: Any, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog
) -> None:
    """A background request is prepared (its MCP tools listed) when it is accepted, since a bad
    one must be refused then; a job that waited in the queue runs with that listing, and the
    listing it reports is the one made then."""
    server = make_server(background_workers=1)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    upstream.queue(text(" ".join(["busy"] * 60), delay=0.05), text("listed once"))
    busy = client.responses.create(model=MODEL, input="first", background=True)
    queued = client.responses.create(model=MODEL, input="second", background=True, tools=[mcp_tool(mcp_server)])
    assert client.responses.retrieve(queued.id).status == "queued"  # the only slot is busy
    assert mcp_log.list_calls == 1
    client.responses.cancel(busy.id)
    deadline = time.monotonic() + 30
    while (final := client.responses.retrieve(queued.id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert final.status == "completed" and final.output_text == "listed once"
    assert mcp_log.list_calls == 1  # not listed again when it ran
    assert [i.type for i in final.output] == ["mcp_list_tools", "message"]
