"""A Codex CLI session written from its public request shapes, replayed against the server (issue 18):
the first request, an exec_command call and its output, a custom apply_patch call (under Codex's
Lark grammar) and its output, each turn stateless (store false, the whole history), every event
validated against the SDK's types. Then Codex's other habits: its headers, its item ids,
prompt_cache_key and text.verbosity."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import MODEL
from tests.fake_upstream import calls, text
from tests.helpers import check_stream, sse_events

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "codex_first_request.json").read_text())
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n*** End Patch\n"
HEADERS = {"session_id": str(uuid.uuid4()), "x-client-request-id": str(uuid.uuid4()), "originator": "codex_cli_rs",
           "x-codex-turn-metadata": json.dumps({"turn_id": "t1", "sandbox": "workspace-write"}),
           "x-codex-beta-features": "unified_exec", "version": "0.171.0"}


def _turn(server: Any, history: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One Codex turn: the whole history, store false, streamed; the final response and its events."""
    body = {**FIXTURE, "model": MODEL, "input": history}
    events = sse_events(server.url, body, headers=HEADERS)
    final = check_stream(events)
    assert final.status == "completed" and final.store is False
    return events[-1]["response"], events


def _as_codex_sends(item: dict[str, Any]) -> dict[str, Any]:
    """An output item as Codex keeps it in its history and sends it back."""
    return {k: v for k, v in item.items() if k not in ("status",)}


def test_a_codex_session_edits_through_exec_command_and_apply_patch(server, upstream):
    history = list(FIXTURE["input"])
    upstream.queue(calls(("exec_command", {"cmd": "ls", "workdir": "/work/app"})),
                   calls(("apply_patch", {"input": PATCH})),
                   text("Created hello.txt."))

    first, _ = _turn(server, history)
    [call] = first["output"]
    assert (call["type"], call["name"], json.loads(call["arguments"])) == ("function_call", "exec_command",
                                                                           {"cmd": "ls", "workdir": "/work/app"})
    history += [_as_codex_sends(call), {"type": "function_call_output", "id": f"fco_{uuid.uuid4()}",
                                        "call_id": call["call_id"], "output": "README.md\nsrc\n"}]

    second, events = _turn(server, history)
    [patch] = second["output"]
    assert (patch["type"], patch["name"], patch["input"]) == ("custom_tool_call", "apply_patch", PATCH)
    assert [e["type"] for e in events if "custom_tool_call_input" in e["type"]] == [
        "response.custom_tool_call_input.delta", "response.custom_tool_call_input.done"]
    history += [_as_codex_sends(patch), {"type": "custom_tool_call_output", "call_id": patch["call_id"],
                                         "output": "Success. Updated the following files:\nA hello.txt\n"}]

    third, _ = _turn(server, history)
    assert third["output"][0]["content"][0]["text"] == "Created hello.txt."
    sent = upstream.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "system", "system", "user", "assistant", "tool", "assistant",
                                         "tool"]
    assert sent[4]["tool_calls"][0]["function"]["name"] == "exec_command"
    assert sent[5] == {"role": "tool", "tool_call_id": call["call_id"], "content": "README.md\nsrc\n"}
    assert json.loads(sent[6]["tool_calls"][0]["function"]["arguments"]) == {"input": PATCH}
    assert sent[7]["content"].startswith("Success.")
    # every turn offered the same tools: functions, the namespace's, apply_patch and tool_search
    assert all(len(r["tools"]) == 5 for r in upstream.requests)


def test_codex_habits_headers_item_ids_cache_key_and_verbosity(server, upstream):
    body = {**FIXTURE, "model": MODEL, "store": True, "stream": False}
    r = httpx.post(server.url + "/v1/responses", json=body, headers=HEADERS, timeout=30)
    assert r.status_code == 200, r.text  # its x-codex-* and session headers change nothing
    items = httpx.get(f"{server.url}/v1/responses/{r.json()['id']}/input_items?order=asc", timeout=30).json()["data"]
    assert [i["id"] for i in items[:2]] == [m["id"] for m in FIXTURE["input"][:2]]  # msg_<uuid> ids kept
    sent = upstream.requests[-1]
    assert sent["prompt_cache_key"] == FIXTURE["prompt_cache_key"]
    assert "verbosity" not in sent  # a chat backend without the parameter gets an instruction instead
    assert sent["messages"][0]["content"].endswith("Keep your answers short: say only what is needed.")
    assert not any(k.lower().startswith("x-codex") for k in json.dumps(sent).split('"'))


def test_verbosity_reaches_the_model_as_each_backend_allows():
    from rejoinder.backends.base import ModelRoute
    from rejoinder.engine.chat_request import VERBOSITY_LINES, chat_body

    messages = [{"role": "user", "content": "hi"}]
    for setting, verbosity, sent_param, first in (
            ("instruction", "high", None, {"role": "system", "content": VERBOSITY_LINES["high"]}),
            ("instruction", "medium", None, messages[0]),
            ("param", "low", "low", messages[0]),
            ("off", "low", None, messages[0])):
        route = ModelRoute(name="m", backend=None, upstream_model="m", verbosity=setting)  # type: ignore[arg-type]
        body = chat_body(route, {"text": {"verbosity": verbosity}}, messages, [], None)
        assert body.get("verbosity") == sent_param, setting
        assert body["messages"][0] == first, (setting, verbosity)
