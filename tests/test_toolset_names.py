"""The names MCP tools get in front of the model: legal, unique, at most 64 characters, stable."""

from __future__ import annotations

import re

from rejoinder.config import Settings
from rejoinder.tenant import Tenant
from rejoinder.tools.interface import ToolSetup
from rejoinder.tools.mcp.kind import McpGroup
from rejoinder.tools.registry import BUILTIN
from rejoinder.tools.toolset import Toolset

LEGAL = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _toolset(label: str, *functions: str) -> McpGroup:
    """The request's MCP tools, after its function tools claimed their names."""
    tools = [{"type": "function", "name": f, "parameters": {"type": "object"}} for f in functions]
    tools.append({"type": "mcp", "server_label": label, "server_url": "http://127.0.0.1:1/mcp",
                  "require_approval": "never"})
    toolset = Toolset.from_request(tools, BUILTIN, ToolSetup(Settings(), Tenant("test")))
    return next(g for g in toolset if isinstance(g, McpGroup))


def _names(ts: McpGroup) -> dict[str, str]:
    return {t.name: model for model, t in ts.tools.items()}


def test_plain_names_are_kept() -> None:
    ts = _toolset("lab")
    ts.add_listing("lab", [{"name": "get_user_id"}, {"name": "notify-admin"}])
    assert _names(ts) == {"get_user_id": "get_user_id", "notify-admin": "notify-admin"}


def test_illegal_characters_are_replaced() -> None:
    ts = _toolset("lab")
    ts.add_listing("lab", [{"name": "files.read/all"}])
    assert _names(ts) == {"files.read/all": "files_read_all"}


def test_clash_with_a_function_is_prefixed() -> None:
    ts = _toolset("lab", "search")
    ts.add_listing("lab", [{"name": "search"}])
    assert _names(ts) == {"search": "lab__search"}


def test_long_clashing_names_stay_legal_unique_and_stable() -> None:
    label = "a_very_long_server_label_" * 3
    name = "tool_with_a_long_name_" * 3
    ts = _toolset(label, name[:64])
    ts.add_listing(label, [{"name": name}, {"name": name[:64]}, {"name": name + "x"}])
    models = list(_names(ts).values())
    assert all(LEGAL.match(m) for m in models), models
    assert len(set(models)) == 3 and name[:64] not in models  # the function keeps its own name

    again = _toolset(label, name[:64])
    again.add_listing(label, [{"name": name}, {"name": name[:64]}, {"name": name + "x"}])
    assert list(_names(again).values()) == models  # the same request maps the same way every turn


def test_a_model_call_by_the_new_name_reaches_the_tool() -> None:
    ts = _toolset("lab", "search")
    ts.add_listing("lab", [{"name": "search"}])
    tool = ts.tools["lab__search"]
    assert (tool.server.server_label, tool.name) == ("lab", "search")
    assert ts.aliases() == {("lab", "search"): "lab__search"}

