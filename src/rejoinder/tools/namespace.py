"""Namespaces: a named group of function and custom tools (Codex puts each MCP server's tools in one).

A chat-completions backend has one flat list of function names, so each tool is offered under a
qualified name (``namespace__tool``, made legal and unique among the request's tools). The call
comes back as the ``function_call`` or ``custom_tool_call`` it is, carrying ``namespace`` and the
tool's own name, which is what the client dispatches on; replaying it, the model sees the
qualified name again (``aliases``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rejoinder.engine.events import Event
from rejoinder.errors import InvalidRequest
from rejoinder.tools.checked_call import Attempts
from rejoinder.tools.custom import CustomOffer, check_declaration
from rejoinder.tools.function import FunctionCall, FunctionOffer
from rejoinder.tools.interface import CallEnv, ModelCall, Names, Offer, ToolGroup, ToolKind

if TYPE_CHECKING:
    from rejoinder.tools.interface import ToolSetup

class NamespacedFunction(FunctionOffer):
    """A namespace's function: offered under its qualified name, its item names the tool as declared."""

    def __init__(self, name: str, declaration: dict[str, Any], namespace: str):
        super().__init__(name, declaration)
        self.namespace = namespace

    def begin(self, env: CallEnv, call_id: str) -> tuple[ModelCall, list[Event]]:
        call, events = super().begin(env, call_id)
        assert isinstance(call, FunctionCall)
        item = env.state.output[call.index]
        item["name"] = self.declaration["name"]  # type: ignore[index]
        item["namespace"] = self.namespace
        return call, events


class NamespaceGroup(ToolGroup):
    def __init__(self, kind: NamespaceKind, declarations: list[tuple[str, dict[str, Any]]], names: Names):
        self.kind = kind
        self.attempts = Attempts()
        self.offered: list[Offer] = []
        self._aliases: dict[tuple[str, str], str] = {}
        seen: set[str] = set()
        for param, ns in declarations:
            label = ns["name"]
            if label in seen:
                raise InvalidRequest(f"Duplicate namespace name '{label}'.", param=f"{param}.name")
            seen.add(label)
            own: set[str] = set()
            for j, tool in enumerate(ns["tools"]):
                if tool["name"] in own:
                    raise InvalidRequest(f"Duplicate tool name '{tool['name']}' in namespace '{label}'.",
                                         param=f"{param}.tools[{j}].name")
                own.add(tool["name"])
                model_name = names.claim(names.qualified(
                    label, tool["name"], f"Namespace '{label}' has tool names that cannot be told apart."))
                self._aliases[(label, tool["name"])] = model_name
                if tool["type"] == "custom":
                    grammar = check_declaration(tool, f"{param}.tools[{j}]")
                    self.offered.append(CustomOffer(model_name, tool, label, self.attempts, grammar))
                else:
                    self.offered.append(NamespacedFunction(model_name, tool, label))

    def offers(self) -> Sequence[Offer]:
        return self.offered

    def aliases(self) -> dict[tuple[str, str], str]:
        return self._aliases


class NamespaceKind(ToolKind):
    type = "namespace"

    def group(self, declarations: list[tuple[str, dict[str, Any]]], names: Names, setup: ToolSetup) -> ToolGroup:
        return NamespaceGroup(self, declarations, names)
