"""The embedded model writes a custom tool's input under the tool's grammar (llguidance), and a
chat backend upstream never sees the grammar key (issue 18)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any

import pytest

from rejoinder.backends.base import NOT_ADMITTED
from rejoinder.backends.embedded import find_model_file, unavailable_reason
from rejoinder.backends.embedded_backend import EmbeddedBackend
from rejoinder.backends.openai_compat import _sent
from rejoinder.config import EmbeddedConfig
from rejoinder.tools.grammar import GRAMMAR_KEY, compile_grammar

pytestmark = pytest.mark.embedded
_missing = unavailable_reason(EmbeddedConfig())
if _missing and os.environ.get("REJOINDER_REQUIRE_EMBEDDED") != "1":
    pytestmark = [pytest.mark.embedded, pytest.mark.skip(reason=f"embedded model unavailable: {_missing}")]

PATCH = ('start: "*** Begin Patch\\n*** Add File: " NAME "\\n+" WORD "\\n*** End Patch\\n"\n'
         'NAME: /[a-z]{1,8}\\.txt/\nWORD: /[a-z]{1,10}/\n')
CODE = r"(red|blue) [0-9]{2}"


def _tool(name: str, syntax: str, definition: str) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": "A freeform tool.",
        "parameters": {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]},
        GRAMMAR_KEY: {"syntax": syntax, "definition": definition}}}


PLAIN = {"type": "function", "function": {"name": "get_user_id", "parameters": {
    "type": "object", "properties": {"username": {"type": "string"}}, "required": ["username"]}}}


def _call(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """One generation on a backend of its own (its queue belongs to this event loop)."""
    path = find_model_file(EmbeddedConfig())
    assert path is not None

    async def run() -> tuple[list[dict[str, Any]], str | None]:
        backend = EmbeddedBackend(path, "smol", 2048, 4, None)
        calls, finish = [], None
        try:
            async for chunks in backend.stream(body, NOT_ADMITTED):
                for c in chunks:
                    for choice in c.get("choices") or []:
                        calls += choice["delta"].get("tool_calls") or []
                        finish = choice.get("finish_reason") or finish
        finally:
            await backend.aclose()
        return calls, finish
    return asyncio.run(run())


@pytest.mark.parametrize(("syntax", "definition"), [("lark", PATCH), ("regex", CODE)])
def test_a_forced_custom_call_matches_its_grammar(syntax, definition):
    body = {"messages": [{"role": "user", "content": "Create a file."}], "max_tokens": 48, "temperature": 0,
            "tools": [_tool("edit", syntax, definition), PLAIN],
            "tool_choice": {"type": "function", "function": {"name": "edit"}}}
    calls, finish = _call(body)
    assert finish == "tool_calls" and len(calls) == 1, calls
    assert calls[0]["function"]["name"] == "edit"
    text = json.loads(calls[0]["function"]["arguments"])["input"]
    assert compile_grammar(syntax, definition).mismatch(text) is None, text  # type: ignore[arg-type]
    if syntax == "regex":
        assert re.fullmatch(CODE, text)


def test_the_grammar_key_stays_out_of_an_upstream_body():
    body = {"model": "m", "messages": [], "tools": [_tool("edit", "regex", CODE), PLAIN]}
    sent = _sent(body)
    assert GRAMMAR_KEY not in json.dumps(sent)
    assert sent["tools"][1] == PLAIN and sent["tools"][0]["function"]["name"] == "edit"
    assert GRAMMAR_KEY in body["tools"][0]["function"]  # the caller's body is not changed


def test_through_the_server_a_custom_call_is_written_under_its_grammar(tmp_path):
    """The whole path on the embedded model: Responses request -> constrained decoding -> a
    custom_tool_call whose input the grammar accepts, its events valid; then its output goes back."""
    from rejoinder.config import Settings
    from rejoinder.http.app import create_app
    from tests.conftest import storage_url
    from tests.fake_upstream import ThreadServer
    from tests.helpers import check_stream, sse_events

    tool = {"type": "custom", "name": "apply_patch", "description": "Edit files.",
            "format": {"type": "grammar", "syntax": "lark", "definition": PATCH}}
    settings = Settings(data_dir=tmp_path, storage_url=storage_url(tmp_path), models={},
                        embedded={"enabled": "on"})
    with ThreadServer(create_app(settings)) as server:
        name = EmbeddedConfig().name
        events = sse_events(server.url, {"model": name, "input": "Create a file with one word.", "tools": [tool],
                                         "tool_choice": {"type": "custom", "name": "apply_patch"},
                                         "temperature": 0, "max_output_tokens": 48})
        final = check_stream(events)
        [item] = final.output
        assert item.type == "custom_tool_call" and item.name == "apply_patch"
        assert compile_grammar("lark", PATCH).mismatch(item.input) is None, item.input
        answer = {"type": "custom_tool_call_output", "call_id": item.call_id, "output": "Done."}
        events = sse_events(server.url, {"model": name, "previous_response_id": final.id, "input": [answer],
                                         "tools": [tool], "temperature": 0, "max_output_tokens": 16})
        assert check_stream(events).status in ("completed", "incomplete")


def test_token_counting_upstream_never_sees_the_grammar_key():
    from rejoinder.backends.openai_compat import upstream_tools

    tools = [_tool("edit", "regex", CODE), PLAIN]
    assert GRAMMAR_KEY not in json.dumps(upstream_tools(tools)) and upstream_tools(tools)[1] == PLAIN
