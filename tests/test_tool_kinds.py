"""The tool interface (tools/interface.py): a new server-executed tool is one module and one
registration line. ``tests/calculator_tool.py`` serves ``code_interpreter`` with a calculator;
registered on one server, it streams its own events, feeds its result back to the model, replays
along a ``previous_response_id`` chain, and counts against ``max_tool_calls``. The engine names no
tool kind."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from rejoinder.tools.citations import CitationStream, Source, Sources
from rejoinder.tools.interface import Names, ToolGroup, ToolSetup
from rejoinder.tools.registry import BUILTIN
from tests.calculator_tool import CalculatorGroup, CalculatorKind, evaluate
from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, ThreadServer, calls, text
from tests.helpers import check_stream, sse_events

TOOLS = [{"type": "code_interpreter", "container": "cntr_calc"}]
SRC = Path(__file__).resolve().parents[1] / "src" / "rejoinder"


@pytest.fixture
def calc_server(make_server: Any) -> ThreadServer:
    return make_server(tools=BUILTIN.with_kinds(CalculatorKind()))


def _post(server: ThreadServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + "/v1/responses", json={"model": MODEL, **body}, timeout=30)


def _tool_messages(request: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, result) of every tool call the backend was shown, in order."""
    names = {c["id"]: c["function"]["name"] for m in request["messages"] if m["role"] == "assistant"
             for c in m.get("tool_calls") or []}
    return [(names[m["tool_call_id"]], m["content"]) for m in request["messages"] if m["role"] == "tool"]


def test_calculator_evaluates_arithmetic_only() -> None:
    assert evaluate("6 * 7") == "42"
    assert evaluate("-(2 ** 10) // 3") == "-342"
    with pytest.raises(ValueError):
        evaluate("__import__('os')")


def test_a_server_tool_streams_its_events_and_its_result_reaches_the_model(
    calc_server: ThreadServer, upstream: FakeUpstream
) -> None:
    upstream.queue(calls(("python", {"code": "6 * 7"})), text("It is 42."))
    events = sse_events(calc_server.url, {"model": MODEL, "input": "What is 6 times 7?", "tools": TOOLS})
    final = check_stream(events)
    assert [i.type for i in final.output] == ["code_interpreter_call", "message"]
    call = final.output[0]
    assert call.code == "6 * 7" and call.container_id == "cntr_calc" and call.status == "completed"
    assert [o.model_dump() for o in call.outputs or []] == [{"type": "logs", "logs": "42"}]
    kinds = [e["type"] for e in events if e.get("item_id") == call.id]
    assert kinds == ["response.code_interpreter_call.in_progress", "response.code_interpreter_call_code.delta",
                     "response.code_interpreter_call_code.done", "response.code_interpreter_call.interpreting",
                     "response.code_interpreter_call.completed"]
    offered = [t["function"]["name"] for t in upstream.requests[0]["tools"]]
    assert offered == ["python"]
    assert _tool_messages(upstream.requests[1]) == [("python", "42")]


def test_its_items_replay_along_a_chain_and_beside_function_tools(
    calc_server: ThreadServer, upstream: FakeUpstream
) -> None:
    tools = [*TOOLS, {"type": "function", "name": "note", "parameters": {"type": "object"}}]
    upstream.queue(calls(("python", {"code": "2 ** 5"})), calls(("note", {"text": "32"})))
    first = _post(calc_server, {"input": "2 to the 5th, then note it", "tools": tools}).json()
    assert [i["type"] for i in first["output"]] == ["code_interpreter_call", "function_call"]
    upstream.queue(text("Noted."))
    second = _post(calc_server, {
        "previous_response_id": first["id"], "tools": tools,
        "input": [{"type": "function_call_output", "call_id": first["output"][1]["call_id"], "output": "ok"}],
    })
    assert second.status_code == 200, second.text
    assert _tool_messages(upstream.requests[-1]) == [("python", "32"), ("note", "ok")]


def test_server_calls_count_against_max_tool_calls(calc_server: ThreadServer, upstream: FakeUpstream) -> None:
    upstream.queue(calls(("python", {"code": "1 + 1"})), calls(("python", {"code": "2 + 2"})), text("done"))
    r = _post(calc_server, {"input": "add twice", "tools": TOOLS, "max_tool_calls": 1})
    assert r.status_code == 200, r.text
    output = r.json()["output"]
    assert [i["type"] for i in output] == ["code_interpreter_call", "message"]
    assert "tools" not in upstream.requests[1]  # the budget is spent: the server tool is no longer offered


def test_a_kind_not_registered_is_refused(server: ThreadServer) -> None:
    r = _post(server, {"input": "hi", "tools": TOOLS})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "tools[0].type"
    assert r.json()["error"]["code"] == "unsupported_value"


def test_concurrent_server_calls_stream_in_output_order(calc_server: ThreadServer, upstream: FakeUpstream) -> None:
    upstream.queue(calls(("python", {"code": "3 * 3"}), ("python", {"code": "4 * 4"})), text("9 and 16"))
    events = sse_events(calc_server.url, {"model": MODEL, "input": "squares", "tools": TOOLS})
    final = check_stream(events)  # sequence numbers strictly increasing, every event valid
    calls_ = [i for i in final.output if i.type == "code_interpreter_call"]
    assert [c.outputs[0].logs for c in calls_ if c.outputs] == ["9", "16"]
    completed = [e["output_index"] for e in events if e["type"] == "response.code_interpreter_call.completed"]
    assert completed == [0, 1]
    assert _tool_messages(upstream.requests[1]) == [("python", "9"), ("python", "16")]


def test_the_engine_names_no_tool_kind() -> None:
    """Every tool type and tool item type lives in tools/, none in engine/ (``"function"`` there is
    chat completions' own tool type, the backend's wire format)."""
    names = {kind.type for kind in BUILTIN} | {t.type for kind in BUILTIN for t in kind.item_types}
    names |= {"code_interpreter", "code_interpreter_call", "file_search", "web_search", "custom", "shell"}
    names.discard("function")
    quoted = re.compile("|".join(rf"[\"']{re.escape(n)}[\"']" for n in names) + r"|\bmcp", re.IGNORECASE)
    for path in (SRC / "engine").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not quoted.search(line), f"{path.name}:{number}: {line.strip()}"


class _CitingGroup(CalculatorGroup):
    def text_filter(self) -> CitationStream:
        return CitationStream(Sources([Source("url", url="https://example.com/calc", title="Calc")]))


class _CitingKind(CalculatorKind):
    def group(self, declarations: list[tuple[str, dict[str, Any]]], names: Names, setup: ToolSetup) -> ToolGroup:
        return _CitingGroup(self, declarations, names)


def test_a_tools_text_filter_turns_markers_into_annotations(make_server: Any, upstream: FakeUpstream) -> None:
    server = make_server(tools=BUILTIN.with_kinds(_CitingKind()))
    upstream.queue(text("It is 42 [1]. Done"))  # split into several deltas: the marker may span two
    events = sse_events(server.url, {"model": MODEL, "input": "6*7?", "tools": TOOLS})
    final = check_stream(events)
    part = final.output[0].content[0]
    assert part.type == "output_text" and part.text == "It is 42. Done"
    assert [a.model_dump() for a in part.annotations] == [
        {"type": "url_citation", "url": "https://example.com/calc", "title": "Calc", "start_index": 0, "end_index": 8}]
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == part.text
    added = [e for e in events if e["type"] == "response.output_text.annotation.added"]
    assert [e["annotation_index"] for e in added] == [0]
