"""Tool search run by the client (``{type: tool_search, execution: client}``), as Codex declares it.

The model is offered a ``tool_search`` function with the declaration's own parameters. Its call
becomes a ``tool_search_call`` item (``arguments`` as an object) that ends the turn; the client
searches its tools and answers with a ``tool_search_output`` whose ``tools`` are loaded: from the
next step on they are offered to the model (tools/loading.py), as are the request's tools
declared with ``defer_loading`` once an output names them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rejoinder.engine.events import Event
from rejoinder.errors import InvalidRequest
from rejoinder.ids import new_id
from rejoinder.item_types import ItemType, ReplayCall, Replayed, ReplayOutput, ReplayScope
from rejoinder.tools.checked_call import Attempts, CheckedCall
from rejoinder.tools.interface import CallEnv, ModelCall, Names, Offer, ToolGroup, ToolKind

if TYPE_CHECKING:
    from rejoinder.tools.interface import ToolSetup

NAME = "tool_search"
DEFAULT_PARAMETERS = {"type": "object", "properties": {"query": {"type": "string", "description":
                                                                 "What the tool you need does."}},
                      "required": ["query"]}
DEFAULT_DESCRIPTION = "Search for more tools: the tools found can be called from the next step on."


def _replay_call(item: dict[str, Any], scope: ReplayScope) -> Replayed:
    return ReplayCall(item.get("call_id") or item["id"], NAME, json.dumps(item.get("arguments") or {}))


def loaded_names(tools: list[dict[str, Any]]) -> list[str]:
    out = []
    for tool in tools:
        if tool.get("type") == "namespace":
            out += [f"{tool.get('name')}.{t.get('name')}" for t in tool.get("tools") or []]
        else:
            out.append(str(tool.get("name") or tool.get("type")))
    return out


def _replay_output(item: dict[str, Any], scope: ReplayScope) -> Replayed:
    if not item.get("call_id"):
        return None  # the server's own search: no call of the model to answer
    names = loaded_names(item.get("tools") or [])
    text = f"Tools loaded: {', '.join(names)}." if names else "No tools found."
    return ReplayOutput(item["call_id"], text)


class ToolSearchOffer(Offer):
    def __init__(self, declaration: dict[str, Any]):
        self.name = NAME
        self.declaration = declaration
        self.attempts = Attempts()

    def chat_tool(self) -> dict[str, Any]:
        return {"type": "function", "function": {
            "name": NAME, "description": self.declaration.get("description") or DEFAULT_DESCRIPTION,
            "parameters": self.declaration.get("parameters") or DEFAULT_PARAMETERS}}

    def begin(self, env: CallEnv, call_id: str) -> tuple[ModelCall, list[Event]]:
        env.observer.tool_called(NAME)

        def check(arguments: str) -> tuple[dict[str, Any] | None, str | None]:
            try:
                value = json.loads(arguments or "{}")
            except ValueError:
                return None, "its arguments are not valid JSON."
            if not isinstance(value, dict):
                return None, "its arguments are not a JSON object."
            return {"id": new_id("tsc"), "type": "tool_search_call", "call_id": call_id, "arguments": value,
                    "execution": "client", "status": "completed"}, None

        return CheckedCall(env, call_id, NAME, check, self.attempts), []


class ToolSearchGroup(ToolGroup):
    def __init__(self, kind: ToolSearchKind, declarations: list[tuple[str, dict[str, Any]]], names: Names):
        self.kind = kind
        self.offered: list[Offer] = []
        if len(declarations) > 1:
            raise InvalidRequest("Duplicate 'tool_search' tool.", param=f"{declarations[1][0]}.type")
        for param, tool in declarations:
            if tool.get("execution", "server") != "client":
                raise InvalidRequest(
                    "tool_search with execution 'server' is not available on this server: declare it with "
                    "execution 'client' and answer its calls with tool_search_output items.",
                    param=f"{param}.execution", code="unsupported_value")
            if NAME in names.taken:
                raise InvalidRequest(f"The tool name '{NAME}' is taken by another tool of this request.",
                                     param=f"{param}.type")
            names.claim(NAME)
            self.offered.append(ToolSearchOffer(tool))

    def offers(self) -> Sequence[Offer]:
        return self.offered


class ToolSearchKind(ToolKind):
    type = "tool_search"
    item_types = (ItemType("tool_search_call", "tsc", _replay_call),
                  ItemType("tool_search_output", "tso", _replay_output),
                  ItemType("additional_tools", "at"))

    def group(self, declarations: list[tuple[str, dict[str, Any]]], names: Names, setup: ToolSetup) -> ToolGroup:
        return ToolSearchGroup(self, declarations, names)
