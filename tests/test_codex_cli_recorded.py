"""A real Codex CLI 0.171 session replayed: its request shapes, recorded between Codex and
Rejoinder (``codex exec`` creating a file through exec_command and editing it through the custom
apply_patch tool, then ``codex exec resume --last`` for a second turn), sent again the way Codex
builds them: stateless (store false, the whole history every request), each request's input the
previous one's plus the server's output items and the client's tool outputs.

The items the server made in the recording (reasoning with its sealed blob, calls, the answer)
are replaced by the ones this server makes, as Codex would have them; the client's own items
(instructions, user messages, tool outputs) are sent as recorded. Every event is checked against
the SDK's types, and the reasoning of each turn must reach the backend again on the turn's later
requests through its encrypted content."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.fake_upstream import Turn, text
from tests.helpers import check_stream, sse_events

SESSION = json.loads((Path(__file__).parent / "fixtures" / "codex_0_171_session.json").read_text())
MODEL = SESSION["request"]["model"]  # a model name of Codex's catalog, served as an alias
SERVER_MADE = {"reasoning", "function_call", "custom_tool_call"}

SCRIPT = [
    Turn(reasoning="The user wants a file. I will create it with the shell first.",
         tool_calls=[("exec_command", {"cmd": "printf 'hello\\n' > notes.txt"})]),
    Turn(reasoning="The file exists. Now I edit it through apply_patch.",
         tool_calls=[("apply_patch", {"input": "*** Begin Patch\n*** Update File: notes.txt\n@@\n-hello\n"
                                                "+hello, patched\n*** End Patch\n"})]),
    text("Created notes.txt with the shell and patched it with apply_patch."),
    Turn(reasoning="Second turn: read the file back.", tool_calls=[("exec_command", {"cmd": "cat notes.txt"})]),
    text("notes.txt says: hello, patched"),
]
EXPECTED = [["reasoning", "function_call"], ["reasoning", "custom_tool_call"], ["message"],
            ["reasoning", "function_call"], ["message"]]


def _made_by_server(item: dict[str, Any]) -> bool:
    return item["type"] in SERVER_MADE or (item["type"] == "message" and item.get("role") == "assistant")


def test_codex_session_replays(make_server: Any, upstream: Any) -> None:
    server = make_server(models={MODEL: {"base_url": upstream.url + "/v1", "model": "fake-model"}})
    upstream.queue(*SCRIPT)
    recorded = SESSION["request"]["input"]
    ours: list[dict[str, Any]] = []  # the server's output items so far, as Codex keeps them
    call_ids: dict[str, str] = {}  # recorded call id -> this server's
    for step, (n, kinds) in enumerate(zip(SESSION["input_lengths"], EXPECTED, strict=True)):
        body = copy.deepcopy(SESSION["request"])
        made = iter(ours)
        history = []
        for item in recorded[:n]:
            if _made_by_server(item):
                mine = next(made)
                assert mine["type"] == item["type"]
                if "call_id" in item:
                    call_ids[item["call_id"]] = mine["call_id"]
                history.append(mine)
            else:
                history.append({**item, "call_id": call_ids[item["call_id"]]} if "call_id" in item else item)
        body["input"] = history
        final = check_stream(sse_events(server.url, body))
        assert final.status == "completed" and [o.type for o in final.output] == kinds, (step, final.output)
        output = [o.model_dump(exclude_none=True) for o in final.output]
        for item in output:
            if item["type"] == "reasoning":
                assert item["encrypted_content"]  # include: ["reasoning.encrypted_content"]
        custom = [o for o in output if o["type"] == "custom_tool_call"]
        if custom:  # Codex needs apply_patch as a custom call, its input the raw patch
            assert custom[0]["name"] == "apply_patch" and custom[0]["input"].startswith("*** Begin Patch\n")
        ours += output
    sent = [[m.get("reasoning_content") for m in r["messages"] if m["role"] == "assistant"]
            for r in upstream.requests]
    first, second = SCRIPT[0].reasoning, SCRIPT[1].reasoning
    assert sent[1] == [first] and sent[2] == [first, second]  # within the turn: reasoning goes back
    assert sent[3] == [None, None, None]  # a new user turn: the earlier turn's reasoning stays out
    assert sent[4] == [None, None, None, SCRIPT[3].reasoning]
    assert all(r["model"] == "fake-model" for r in upstream.requests)
