"""Every tool type of the SDK's ``Tool`` union and every type of its input item union is accepted or
refused with a 400 that names it (issue 18). The lists come from the SDK, so a type a newer SDK adds
is covered without editing this file."""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai.types.responses import response_input_item_param as P
from openai.types.responses.tool_param import ToolParam

from rejoinder.api.items import ITEM_TYPES, NOT_AVAILABLE
from rejoinder.tools.grammar import compile_grammar
from rejoinder.tools.registry import BUILTIN
from tests.conftest import MODEL

SERVED = BUILTIN.types  # the kinds the server serves by default

CODEX = json.loads((Path(__file__).parent / "fixtures" / "codex_first_request.json").read_text())
APPLY_PATCH = next(t for t in CODEX["tools"] if t["type"] == "custom")


def _kinds(union: Any) -> list[str]:
    out = []
    for member in typing.get_args(union):
        hint = typing.get_type_hints(member).get("type")
        out += [k for k in typing.get_args(hint) if isinstance(k, str)]
    return sorted(set(out))


TOOL_KINDS = _kinds(ToolParam)
ITEM_KINDS = _kinds(P.ResponseInputItemParam)

# The smallest well-formed declaration of each tool type (the SDK's required fields).
MINIMAL_TOOLS: dict[str, dict[str, Any]] = {
    "function": {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}},
    "file_search": {"type": "file_search", "vector_store_ids": ["vs_1"]},
    "computer": {"type": "computer"},
    "computer_use_preview": {"type": "computer_use_preview", "display_width": 1024, "display_height": 768,
                             "environment": "linux"},
    "mcp": {"type": "mcp", "server_label": "x", "server_url": "http://127.0.0.1:9/mcp", "require_approval": "never"},
    "code_interpreter": {"type": "code_interpreter", "container": {"type": "auto"}},
    "programmatic_tool_calling": {"type": "programmatic_tool_calling"},
    "image_generation": {"type": "image_generation"},
    "local_shell": {"type": "local_shell"},
    "shell": {"type": "shell"},
    "custom": APPLY_PATCH,
    "namespace": {"type": "namespace", "name": "ns", "description": "d",
                  "tools": [{"type": "function", "name": "f"}]},
    "tool_search": {"type": "tool_search", "execution": "client"},
    "apply_patch": {"type": "apply_patch"},
}


def _post(server: Any, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/responses", json={"model": MODEL, "input": "hi", **body}, timeout=30)


@pytest.mark.parametrize("kind", TOOL_KINDS)
def test_each_tool_type_is_served_or_refused_by_name(server, upstream, kind):
    tool = MINIMAL_TOOLS.get(kind) or MINIMAL_TOOLS.get(kind.rsplit("_2", 1)[0]) or {"type": kind}
    tool = {**tool, "type": kind}
    if kind == "mcp":
        pytest.skip("served: tests/test_tools_mcp.py (it needs a live MCP server)")
    r = _post(server, {"tools": [tool]})
    if kind == "file_search":  # served: its store is looked up first (tests/test_file_search_tool.py)
        if r.status_code == 400:  # a PostgreSQL without pgvector has no vector stores to search
            assert os.environ.get("REJOINDER_TEST_STORAGE_URL"), r.text
            assert r.json()["error"]["code"] == "vector_stores_unavailable", r.text
            return
        assert r.status_code == 404 and "vs_1" in r.json()["error"]["message"], r.text
        return
    if kind in SERVED:
        assert r.status_code == 200, r.text
        assert r.json()["tools"][0]["type"] == kind
        if kind.startswith("web_search"):  # no provider: accepted, never offered
            assert "tools" not in upstream.requests[-1]
        return
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert (e["param"], e["code"]) == ("tools[0].type", "unsupported_value"), e
    assert f"'{kind}'" in e["message"]
    assert "not available on this server" in e["message"]


def test_a_custom_tool_grammar_that_does_not_compile_is_named(server):
    bad = {**APPLY_PATCH, "format": {"type": "grammar", "syntax": "lark", "definition": "start: missing_rule\n"}}
    for tools, param in (([bad], "tools[0].format.definition"),
                         ([{"type": "namespace", "name": "n", "description": "d", "tools": [bad]}],
                          "tools[0].tools[0].format.definition")):
        e = _post(server, {"tools": tools}).json()["error"]
        assert (e["param"], e["code"]) == (param, "invalid_value"), e
        assert "missing_rule" in e["message"]
    regex = {**APPLY_PATCH, "format": {"type": "grammar", "syntax": "regex", "definition": "[a-"}}
    e = _post(server, {"tools": [regex]}).json()["error"]
    assert e["param"] == "tools[0].format.definition", e


def test_grammar_checks_find_where_an_input_breaks_it():
    grammar = compile_grammar("lark", APPLY_PATCH["format"]["definition"])
    assert grammar.mismatch("*** Begin Patch\n*** Add File: a.txt\n*** End Patch\n") is None
    why = grammar.mismatch("*** Begin Patch\n*** Ad File: a.txt\n*** End Patch\n")
    assert why is not None and "line 2, column 7" in why
    assert "stops too early" in (grammar.mismatch("*** Begin Patch\n") or "")
    digits = compile_grammar("regex", r"\d{3}-[a-z]+")
    assert digits.mismatch("123-abc") is None
    assert "column 4" in (digits.mismatch("123abc") or "")
    # llguidance's Lark, as OpenAI's: the zero-width /(.*)/ of Codex's real grammar is fine
    assert compile_grammar("lark", 'start: "+" /(.*)/ "\\n"\n').mismatch("+\n") is None


@pytest.mark.parametrize("kind", ITEM_KINDS)
def test_each_input_item_type_is_accepted_or_refused_by_name(server, kind):
    """Served types are covered by their own tests; here: the others say what they are."""
    if kind in ITEM_TYPES or kind == "compaction_trigger":  # compaction_trigger: api/create_response.py
        return
    r = _post(server, {"input": [{"role": "user", "content": "hi"}, {"type": kind}]})
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert e["code"] == "unsupported_value" and e["param"] == "input[1].type", e
    assert f"'{kind}'" in e["message"]
    assert kind in NOT_AVAILABLE
