"""Client-executed built-ins (shell, local_shell, apply_patch) and client tool search with deferred
and additional tools (issue 18): each call is its own item type, checked before the client sees it,
and each ``*_output`` item is the tool's result on the next turn, on a chain and in a conversation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import MODEL
from tests.fake_upstream import ThreadServer, calls, text
from tests.helpers import check_stream, sse_events

SHELL = {"type": "shell"}
LOCAL_SHELL = {"type": "local_shell"}
APPLY_PATCH = {"type": "apply_patch"}
TOOL_SEARCH = {"type": "tool_search", "execution": "client", "description": "Find tools.",
               "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def _create(server: ThreadServer, body: dict[str, Any]) -> dict[str, Any]:
    events = sse_events(server.url, {"model": MODEL, **body})
    check_stream(events)
    return events[-1]["response"]


def _offered(upstream: Any) -> list[str]:
    return [t["function"]["name"] for t in upstream.requests[-1].get("tools") or []]


CASES = [
    (SHELL, ("shell", {"commands": ["ls -la", "pwd"], "timeout_ms": 5000}),
     lambda item: item["action"] == {"commands": ["ls -la", "pwd"], "timeout_ms": 5000, "max_output_length": None},
     lambda call_id: {"type": "shell_call_output", "call_id": call_id, "output": [
         {"stdout": "a.txt\n", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}},
         {"stdout": "", "stderr": "boom", "outcome": {"type": "timeout"}}]},
     "a.txt\n\n[exit code 0]\n\nstderr:\nboom\n[timed out]"),
    (LOCAL_SHELL, ("local_shell", {"command": ["ls", "-la"], "working_directory": "/tmp"}),
     lambda item: item["action"]["command"] == ["ls", "-la"] and item["action"]["type"] == "exec",
     lambda call_id: {"type": "local_shell_call_output", "id": call_id, "output": "a.txt"},
     "a.txt"),
    (APPLY_PATCH, ("apply_patch", {"type": "create_file", "path": "hello.txt", "diff": "+hello\n"}),
     lambda item: item["operation"] == {"type": "create_file", "path": "hello.txt", "diff": "+hello\n"},
     lambda call_id: {"type": "apply_patch_call_output", "call_id": call_id, "status": "completed",
                      "output": "Created hello.txt"},
     "[completed]\nCreated hello.txt"),
]


@pytest.mark.parametrize(("tool", "call", "check_item", "output", "result"), CASES,
                         ids=[c[0]["type"] for c in CASES])
def test_a_builtin_call_is_its_item_and_its_output_is_the_result(server, upstream, tool, call, check_item, output,
                                                                 result):
    upstream.queue(calls(call), text("done"))
    first = _create(server, {"input": "go", "tools": [tool]})
    [item] = first["output"]
    assert item["type"] == f"{tool['type']}_call" and item["status"] == "completed" and check_item(item), item
    assert _offered(upstream) == [tool["type"]]
    answer = output(item["call_id"])
    second = _create(server, {"previous_response_id": first["id"], "input": [answer], "tools": [tool]})
    assert second["output"][0]["type"] == "message"
    sent = upstream.requests[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == item["call_id"] and sent[-2]["tool_calls"][0]["function"]["name"] == \
        tool["type"]
    assert sent[-1] == {"role": "tool", "tool_call_id": item["call_id"], "content": result}
    # the same turn in a conversation: its items are stored and read back in order
    conv = httpx.post(f"{server.url}/v1/conversations", json={}, timeout=30).json()["id"]
    upstream.queue(calls(call), text("done"))
    _create(server, {"conversation": conv, "input": "go", "tools": [tool]})
    stored = httpx.get(f"{server.url}/v1/conversations/{conv}/items?order=asc", timeout=30).json()["data"]
    answer = output(stored[-1]["call_id"])
    _create(server, {"conversation": conv, "input": [answer], "tools": [tool]})
    stored = httpx.get(f"{server.url}/v1/conversations/{conv}/items?order=asc", timeout=30).json()["data"]
    assert [i["type"] for i in stored] == ["message", item["type"], answer["type"], "message"]


def test_a_malformed_builtin_call_is_retried_not_handed_over(server, upstream):
    upstream.queue(calls(("shell", {"command": "ls"})), calls(("shell", {"commands": ["ls"]})))
    response = _create(server, {"input": "list", "tools": [SHELL]})
    assert [i["type"] for i in response["output"]] == ["shell_call"]
    assert "`commands` must be" in upstream.requests[-1]["messages"][-1]["content"]


def test_tool_search_loads_deferred_tools_for_the_next_turn(server, upstream):
    deferred = {**WEATHER, "defer_loading": True}
    upstream.queue(calls(("tool_search", {"query": "weather"})), calls(("get_weather", {"city": "Paris"})))
    first = _create(server, {"input": "weather in Paris?", "tools": [TOOL_SEARCH, deferred]})
    assert _offered(upstream) == ["tool_search"]  # deferred: not offered yet
    [search] = first["output"]
    assert search["type"] == "tool_search_call" and search["execution"] == "client"
    assert search["arguments"] == {"query": "weather"}
    found = {"type": "tool_search_output", "call_id": search["call_id"], "execution": "client",
             "tools": [{"type": "function", "name": "get_weather", "defer_loading": True}]}
    second = _create(server, {"previous_response_id": first["id"], "input": [found],
                              "tools": [TOOL_SEARCH, deferred]})
    assert sorted(_offered(upstream)) == ["get_weather", "tool_search"]
    weather = next(t for t in upstream.requests[-1]["tools"] if t["function"]["name"] == "get_weather")
    assert weather["function"]["parameters"] == WEATHER["parameters"]  # the declared form, not the short one
    assert upstream.requests[-1]["messages"][-1]["content"] == "Tools loaded: get_weather."
    assert second["output"][0]["type"] == "function_call" and second["output"][0]["name"] == "get_weather"


def test_additional_tools_join_mid_conversation(server, upstream):
    _create(server, {"input": "hi", "tools": []})
    assert _offered(upstream) == []
    more = {"type": "additional_tools", "role": "developer", "tools": [WEATHER]}
    _create(server, {"input": [more, {"role": "user", "content": "weather?"}], "tools": []})
    assert _offered(upstream) == ["get_weather"]
    bad = {"type": "additional_tools", "role": "developer", "tools": [{"type": "image_generation"}]}
    r = httpx.post(f"{server.url}/v1/responses", json={"model": MODEL, "input": [bad]}, timeout=30)
    assert r.status_code == 400 and "image_generation" in r.json()["error"]["message"], r.text


def test_server_executed_tool_search_is_refused_by_name(server):
    for tool in ({"type": "tool_search"}, {**TOOL_SEARCH, "execution": "server"}):
        r = httpx.post(f"{server.url}/v1/responses", json={"model": MODEL, "input": "x", "tools": [tool]}, timeout=30)
        assert r.status_code == 400 and r.json()["error"]["param"] == "tools[0].execution", r.text


def test_each_builtin_may_be_forced_by_tool_choice(server, upstream):
    upstream.queue(calls(("apply_patch", {"type": "delete_file", "path": "old.txt"})))
    response = _create(server, {"input": "rm", "tools": [SHELL, APPLY_PATCH], "tool_choice": {"type": "apply_patch"}})
    assert response["output"][0]["operation"] == {"type": "delete_file", "path": "old.txt"}
    assert upstream.requests[-1]["tool_choice"] == {"type": "function", "function": {"name": "apply_patch"}}

