"""Golden SSE event sequences for tool turns.

Every event validates against the SDK's ``ResponseStreamEvent`` union, sequence numbers count up
from 0, and item ids agree between events, the terminal response, the non-streamed response and
``GET``. The sequences are written out in full so any reordering or missing event fails.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, ThreadServer, Turn, calls, text
from tests.helpers import check_stream, sse_events, types
from tests.mcp_server import EXPERIMENT_PROMPT, FUNCTION_TOOLS, McpLog, workflow_model

START = ["response.created", "response.in_progress"]
DONE = ["response.completed"]


# A run of deltas is one entry (``types``): how many events it takes depends on how the chunks arrived.
MESSAGE = ["response.output_item.added", "response.content_part.added", "response.output_text.delta",
           "response.output_text.done", "response.content_part.done", "response.output_item.done"]
FUNCTION_CALL = ["response.output_item.added", "response.function_call_arguments.delta",
                 "response.function_call_arguments.done", "response.output_item.done"]


def _mcp_call(end: str = "completed") -> list[str]:
    return ["response.output_item.added", "response.mcp_call_arguments.delta", "response.mcp_call_arguments.done",
            "response.mcp_call.in_progress", f"response.mcp_call.{end}", "response.output_item.done"]


LIST_TOOLS = ["response.output_item.added", "response.mcp_list_tools.in_progress",
              "response.mcp_list_tools.completed", "response.output_item.done"]
APPROVAL = ["response.output_item.added", "response.output_item.done"]


def _stream(server: ThreadServer, body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    events = sse_events(server.url, {"model": MODEL, **body})
    check_stream(events)
    final = events[-1]["response"]
    stored = httpx.get(f"{server.url}/v1/responses/{final['id']}").json()
    assert stored["output"] == final["output"]
    assert stored["status"] == final["status"]
    return events, final


def _items_done(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["item"] for e in events if e["type"] == "response.output_item.done"]


def test_function_call_sequence(server: ThreadServer, upstream: FakeUpstream) -> None:
    args = '{"username": "charlie"}'
    upstream.queue(calls(("get_user_id", args)))
    events, final = _stream(server, {"input": "id?", "tools": FUNCTION_TOOLS})
    assert types(events) == START + FUNCTION_CALL + DONE
    added = events[2]
    assert added["item"]["status"] == "in_progress" and added["item"]["arguments"] == ""
    assert _items_done(events) == final["output"]


def test_text_then_parallel_calls_sequence(server: ThreadServer, upstream: FakeUpstream) -> None:
    a, b = '{"username": "charlie"}', '{"username": "alice"}'
    upstream.queue(Turn(text="Looking both up", tool_calls=[("get_user_id", a), ("get_user_id", b)]))
    events, final = _stream(server, {"input": "ids?", "tools": FUNCTION_TOOLS})
    assert types(events) == START + MESSAGE + FUNCTION_CALL + FUNCTION_CALL + DONE
    assert [i["type"] for i in final["output"]] == ["message", "function_call", "function_call"]
    assert final["output"][0]["status"] == "completed"
    assert _items_done(events) == final["output"]


def test_mcp_workflow_sequence(
    server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog
) -> None:
    upstream.responder = workflow_model
    tool = {"type": "mcp", "server_label": "lab", "server_url": mcp_server, "require_approval": "never"}
    events, final = _stream(server, {"input": EXPERIMENT_PROMPT, "tools": [tool]})
    first, second = '{"experiment_name": "chemistry"}', '{"experiment_id": "exp_003"}'
    assert types(events) == START + LIST_TOOLS + _mcp_call() + _mcp_call() + MESSAGE + DONE
    assert [i["arguments"] for i in final["output"][1:3]] == [first, second]
    for item in final["output"][1:3]:  # the deltas of each call add up to its arguments
        assert "".join(e["delta"] for e in events if e["type"] == "response.mcp_call_arguments.delta"
                       and e["item_id"] == item["id"]) == item["arguments"]
    assert _items_done(events) == final["output"]
    in_progress = [e for e in events if e["type"] == "response.mcp_call.in_progress"]
    assert [e["item_id"] for e in in_progress] == [i["id"] for i in final["output"][1:3]]
    # The non-streamed response of the same turn has the same shape.
    upstream.reset()
    upstream.responder = workflow_model
    r = httpx.post(server.url + "/v1/responses", json={"model": MODEL, "input": EXPERIMENT_PROMPT,
                                                       "tools": [tool]}, timeout=30).json()
    strip = [{k: v for k, v in i.items() if k != "id"} for i in r["output"]]
    assert strip == [{k: v for k, v in i.items() if k != "id"} for i in final["output"]]


@pytest.mark.parametrize("fails", ["explode", "malformed"])
def test_failed_mcp_call_sequence(
    server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog, fails: str
) -> None:
    args = '{"reason": "x"}' if fails == "explode" else '{"username": '
    upstream.queue(calls(("explode" if fails == "explode" else "get_user_id", args)), text("it failed"))
    tool = {"type": "mcp", "server_label": "lab", "server_url": mcp_server, "require_approval": "never"}
    events, final = _stream(server, {"input": "go", "tools": [tool]})
    assert types(events) == START + LIST_TOOLS + _mcp_call("failed") + MESSAGE + DONE
    assert final["output"][1]["status"] == "failed" and final["output"][1]["error"] is not None


def test_approval_sequences(server: ThreadServer, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog) -> None:
    args = '{"username": "charlie"}'
    tool = {"type": "mcp", "server_label": "lab", "server_url": mcp_server, "require_approval": "always"}
    upstream.queue(calls(("get_user_id", args)))
    events, first = _stream(server, {"input": "charlie?", "tools": [tool]})
    assert types(events) == START + LIST_TOOLS + APPROVAL + DONE
    request = first["output"][1]
    assert request["type"] == "mcp_approval_request" and request["arguments"] == args
    upstream.queue(text("charlie is user_11111"))
    answer = {"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": True}
    events, second = _stream(server, {"previous_response_id": first["id"], "input": [answer], "tools": [tool]})
    assert types(events) == START + _mcp_call() + MESSAGE + DONE
    assert events[3]["delta"] == args
    assert second["output"][0]["approval_request_id"] == request["id"]


def test_iteration_guard_sequence(make_server: Any, upstream: FakeUpstream, mcp_server: str, mcp_log: McpLog) -> None:
    server = make_server(max_tool_iterations=2)
    args = '{"username": "bob"}'
    upstream.responder = lambda body: calls(("get_user_id", args))
    tool = {"type": "mcp", "server_label": "lab", "server_url": mcp_server, "require_approval": "never"}
    events, final = _stream(server, {"input": "loop", "tools": [tool]})
    assert types(events) == START + LIST_TOOLS + _mcp_call() * 2 + ["response.incomplete"]
    assert final["incomplete_details"] == {"reason": "max_messages"}
