"""Custom (freeform) tools and namespaces, as Codex declares them (issue 18): the call is a
``custom_tool_call`` whose input is exactly what the model wrote, a grammar keeps every call the
client sees inside it, and namespaced tools come back under their own names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from rejoinder.tools.checked_call import ATTEMPTS
from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, ThreadServer, calls, text
from tests.helpers import check_stream, sse_events, types

CODEX = json.loads((Path(__file__).parent / "fixtures" / "codex_first_request.json").read_text())
APPLY_PATCH = next(t for t in CODEX["tools"] if t["type"] == "custom")
NAMESPACE = next(t for t in CODEX["tools"] if t["type"] == "namespace")
FREEFORM = {"type": "custom", "name": "run_sql", "description": "Run a SQL query."}
PATCH = '*** Begin Patch\n*** Add File: notes/"quoted" \\ é.txt\n*** End Patch\n'
BAD_PATCH = "*** Begin Patch\n*** Ad File: a.txt\n*** End Patch\n"


def _create(server: ThreadServer, body: dict[str, Any], stream: bool = True) -> dict[str, Any]:
    if stream:
        events = sse_events(server.url, {"model": MODEL, **body})
        check_stream(events)
        return {**events[-1]["response"], "_events": events}
    r = httpx.post(server.url + "/v1/responses", json={"model": MODEL, **body}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("stream", [True, False], ids=["sse", "json"])
def test_a_freeform_call_is_a_custom_tool_call_with_the_input_as_written(server, upstream, stream):
    query = 'SELECT "a\\b" FROM t WHERE x = \'é😀\'\n'
    upstream.queue(calls(("run_sql", {"input": query})))
    response = _create(server, {"input": "count", "tools": [FREEFORM]}, stream)
    [item] = response["output"]
    assert item["type"] == "custom_tool_call" and item["name"] == "run_sql"
    assert item["input"] == query and item["id"].startswith("ctc_") and "namespace" not in item
    offered = upstream.requests[-1]["tools"][0]["function"]
    assert offered["name"] == "run_sql" and offered["parameters"]["required"] == ["input"]
    if stream:
        kinds = types(response["_events"])
        assert kinds[2:-1] == ["response.output_item.added", "response.custom_tool_call_input.delta",
                             "response.custom_tool_call_input.done", "response.output_item.done"], kinds
        done = next(e for e in response["_events"] if e["type"] == "response.custom_tool_call_input.done")
        assert done["input"] == query


def test_a_model_that_writes_other_json_still_gives_its_text(server, upstream):
    upstream.queue(calls(("run_sql", {"query": "SELECT 1"})))
    response = _create(server, {"input": "q", "tools": [FREEFORM]})
    assert response["output"][0]["input"] == "SELECT 1"


def test_the_output_goes_back_to_the_model_on_a_chain_and_in_full_history(server, upstream):
    upstream.queue(calls(("run_sql", {"input": "SELECT 1"})), text("one row"), text("again"))
    first = _create(server, {"input": "q", "tools": [FREEFORM]})
    call = first["output"][0]
    answer = {"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "1"}
    second = _create(server, {"previous_response_id": first["id"], "input": [answer], "tools": [FREEFORM]})
    assert second["output"][0]["content"][0]["text"] == "one row"
    sent = upstream.requests[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["function"] == {"name": "run_sql", "arguments": json.dumps({"input": "SELECT 1"})}
    assert sent[-1] == {"role": "tool", "tool_call_id": call["call_id"], "content": "1"}
    # stateless, as Codex: the whole history every turn, store false
    history = [{"role": "user", "content": "q"}, {k: v for k, v in call.items() if k != "status"}, answer]
    _create(server, {"input": history, "tools": [FREEFORM], "store": False})
    assert upstream.requests[-1]["messages"][-2:] == sent[-2:]
    # and the items list back from the stored chain as they were given
    items = httpx.get(f"{server.url}/v1/responses/{second['id']}/input_items", timeout=30).json()["data"]
    assert [i["type"] for i in items] == ["custom_tool_call_output"]


def test_a_call_that_breaks_the_grammar_never_reaches_the_client(server, upstream):
    upstream.queue(calls(("apply_patch", {"input": BAD_PATCH})), calls(("apply_patch", {"input": PATCH})))
    response = _create(server, {"input": "add a file", "tools": [APPLY_PATCH]})
    [item] = response["output"]
    assert item["type"] == "custom_tool_call" and item["input"] == PATCH
    assert len(upstream.requests) == 2
    retry = upstream.requests[1]["messages"]
    assert json.loads(retry[-2]["tool_calls"][0]["function"]["arguments"]) == {"input": BAD_PATCH}
    assert retry[-1]["role"] == "tool" and "line 2, column 7" in retry[-1]["content"]
    assert BAD_PATCH not in json.dumps(response["_events"])  # nothing of the refused call was streamed
    assert upstream.requests[1]["tool_choice"] == {"type": "function", "function": {"name": "apply_patch"}}
    assert "x-rejoinder-grammar" not in json.dumps(upstream.requests)


def test_a_call_that_keeps_breaking_the_grammar_fails_the_response(server, upstream):
    upstream.queue(*[calls(("apply_patch", {"input": BAD_PATCH})) for _ in range(ATTEMPTS)])
    response = _create(server, {"input": "add a file", "tools": [APPLY_PATCH]})
    assert response["status"] == "failed" and response["output"] == []
    assert "apply_patch" in response["error"]["message"] and f"{ATTEMPTS} attempts" in response["error"]["message"]
    assert len(upstream.requests) == ATTEMPTS


def test_namespaced_tools_come_back_under_their_own_names(server, upstream: FakeUpstream):
    db = {"type": "namespace", "name": "db", "description": "The database.", "tools": [FREEFORM]}
    clash = {"type": "function", "name": "mcp__docs__search", "parameters": {"type": "object", "properties": {}}}
    _create(server, {"input": "x", "tools": [clash, NAMESPACE, db]})
    offered = [t["function"]["name"] for t in upstream.requests[-1]["tools"]]
    assert offered[0] == "mcp__docs__search" and offered[2] == "db__run_sql", offered
    assert offered[1].startswith("mcp__docs__search_") and len(set(offered)) == 3  # qualified, and free

    upstream.queue(calls(("db__run_sql", {"input": "SELECT 2"})))
    [item] = _create(server, {"input": "sql", "tools": [NAMESPACE, db]})["output"]
    assert (item["type"], item["namespace"], item["name"], item["input"]) == ("custom_tool_call", "db", "run_sql",
                                                                           "SELECT 2")
    upstream.queue(calls(("mcp__docs__search", {"q": "install"})), text("done"))
    response = _create(server, {"input": "docs", "tools": [NAMESPACE]})
    [call] = response["output"]
    assert (call["type"], call["namespace"], call["name"]) == ("function_call", "mcp__docs", "search")
    answer = {"type": "function_call_output", "call_id": call["call_id"], "output": "found"}
    _create(server, {"previous_response_id": response["id"], "input": [answer], "tools": [NAMESPACE]})
    assert upstream.requests[-1]["messages"][-2]["tool_calls"][0]["function"]["name"] == "mcp__docs__search"


def test_custom_tools_and_namespaces_refuse_duplicates(server):
    same_as_function = {"type": "function", "name": FREEFORM["name"], "parameters": {"type": "object"}}
    for tools, param in (([FREEFORM, FREEFORM], "tools[1].name"), ([same_as_function, FREEFORM], "tools[1].name"),
                         ([{**NAMESPACE, "tools": NAMESPACE["tools"] * 2}], "tools[0].tools[1].name")):
        r = httpx.post(server.url + "/v1/responses", json={"model": MODEL, "input": "x", "tools": tools}, timeout=30)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_a_server_with_grammar_decoding_writes_the_input_under_the_grammar(make_server, upstream):
    """custom_grammar: structured_outputs (vLLM): the retry of a call that broke the grammar asks for
    the input itself, under the grammar, and the answer becomes the call."""
    models = {MODEL: {"base_url": upstream.url + "/v1", "custom_grammar": "structured_outputs"}}
    server = make_server(models=models)
    upstream.queue(calls(("apply_patch", {"input": BAD_PATCH})), text(PATCH))
    response = _create(server, {"input": "add a file", "tools": [APPLY_PATCH]})
    [item] = response["output"]
    assert (item["type"], item["input"]) == ("custom_tool_call", PATCH)
    first, second = upstream.requests
    assert "structured_outputs" not in first and first["tools"]
    assert second["structured_outputs"] == {"grammar": APPLY_PATCH["format"]["definition"]}
    assert "tools" not in second and "tool_choice" not in second
    assert second["messages"][-1]["role"] == "user" and "apply_patch" in second["messages"][-1]["content"]
    # a client's forced choice goes to the grammar at once
    upstream.reset()
    upstream.queue(text(PATCH))
    forced = _create(server, {"input": "add", "tools": [APPLY_PATCH],
                              "tool_choice": {"type": "custom", "name": "apply_patch"}})
    assert forced["output"][0]["input"] == PATCH and len(upstream.requests) == 1


def test_namespaced_custom_calls_replay_in_a_conversation(server, upstream):
    db = {"type": "namespace", "name": "db", "description": "The database.", "tools": [FREEFORM]}
    conv = httpx.post(f"{server.url}/v1/conversations", json={}, timeout=30).json()["id"]
    upstream.queue(calls(("db__run_sql", {"input": "SELECT 3"})), text("three"))
    first = _create(server, {"conversation": conv, "input": "sql", "tools": [db]})
    call = first["output"][0]
    answer = {"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "3"}
    _create(server, {"conversation": conv, "input": [answer], "tools": [db]})
    sent = upstream.requests[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["function"] == {"name": "db__run_sql",
                                                     "arguments": json.dumps({"input": "SELECT 3"})}
    assert sent[-1] == {"role": "tool", "tool_call_id": call["call_id"], "content": "3"}
    items = httpx.get(f"{server.url}/v1/conversations/{conv}/items?order=asc", timeout=30).json()["data"]
    assert [i["type"] for i in items] == ["message", "custom_tool_call", "custom_tool_call_output", "message"]
    assert (items[1]["namespace"], items[1]["name"], items[1]["input"]) == ("db", "run_sql", "SELECT 3")
