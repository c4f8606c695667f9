"""Function tools: client-executed. The model's call becomes a ``function_call`` item that ends the
turn; the client runs it and continues with a ``function_call_output`` item.

It is also the fallback kind (tools/registry.py): a name the model invents becomes a
``function_call`` too, never an error, whatever tools the request declared.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from openai.types import responses as T

from rejoinder.engine.events import Event, ResponseState
from rejoinder.errors import InvalidRequest
from rejoinder.ids import new_item_id
from rejoinder.item_types import ItemType, ReplayCall, Replayed, ReplayOutput, ReplayScope
from rejoinder.tools.interface import CallEnv, ModelCall, Names, Offer, ToolGroup, ToolKind, ToolSetup

_TEXT_PARTS = ("input_text", "output_text", "text", "summary_text", "reasoning_text")


def output_text(output: Any) -> str:
    """A ``*_output`` item's ``output`` as a tool message: a string, text parts joined, or JSON."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(p.get("refusal", "") if p.get("type") == "refusal"
                       else p.get("text", "") if p.get("type") in _TEXT_PARTS else "" for p in output)
    return json.dumps(output)


def _replay_call(item: dict[str, Any], scope: ReplayScope) -> Replayed:
    name = scope.name(item["namespace"], item["name"]) if item.get("namespace") else item["name"]
    return ReplayCall(item["call_id"], name, item.get("arguments", ""))


def _replay_output(item: dict[str, Any], scope: ReplayScope) -> Replayed:
    return ReplayOutput(item["call_id"], output_text(item.get("output")))


class FunctionCall(ModelCall):
    """A ``function_call`` item: its arguments stream as ``function_call_arguments`` events."""

    def __init__(self, state: ResponseState, index: int):
        self.state = state
        self.index = index

    def delta(self, text: str) -> list[Event]:
        item = self.state.output[self.index]
        item["arguments"] += text
        return [self.state.item_event(T.ResponseFunctionCallArgumentsDeltaEvent,
                                      "response.function_call_arguments.delta", self.index, delta=text)]

    def done(self) -> list[Event]:
        item = self.state.output[self.index]
        if not item["arguments"]:
            item["arguments"] = "{}"  # nothing arrived: an empty object, as the backend would need
        item["status"] = "completed"
        done = self.state.item_event(T.ResponseFunctionCallArgumentsDoneEvent,
                                     "response.function_call_arguments.done", self.index,
                                     arguments=item["arguments"])
        return [done, self.state.item_done(self.index)]


class FunctionOffer(Offer):
    def __init__(self, name: str, declaration: dict[str, Any] | None):
        self.name = name
        self.declaration = declaration  # None: a name the model invented

    def chat_tool(self) -> dict[str, Any]:
        tool = self.declaration or {}
        fn: dict[str, Any] = {"name": self.name}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                fn[key] = tool[key]
        return {"type": "function", "function": fn}

    def begin(self, env: CallEnv, call_id: str) -> tuple[ModelCall, list[Event]]:
        item = {"id": new_item_id("function_call"), "type": "function_call", "status": "in_progress",
                "call_id": call_id, "name": self.name, "arguments": ""}
        index, added = env.state.add_item(item)
        env.observer.tool_called("function")
        return FunctionCall(env.state, index), [added]


class FunctionGroup(ToolGroup):
    def __init__(self, kind: FunctionKind, declarations: list[tuple[str, dict[str, Any]]], names: Names):
        self.kind = kind
        self.functions: dict[str, FunctionOffer] = {}
        for param, tool in declarations:
            if tool["name"] in self.functions:
                raise InvalidRequest(f"Duplicate function tool name '{tool['name']}'.", param=f"{param}.name")
            self.functions[names.claim(tool["name"])] = FunctionOffer(tool["name"], tool)

    def offers(self) -> Sequence[Offer]:
        return list(self.functions.values())

    def choose(self, choice: dict[str, Any], param: str, allowed: bool) -> set[str]:
        name = choice.get("name")
        if allowed:
            if name not in self.functions:
                raise InvalidRequest(f"Allowed tool '{name}' not found in 'tools' parameter.",
                                     param=f"{param}.name", code="invalid_value")
            return {name}
        if not isinstance(name, str):
            raise InvalidRequest(f"Missing required parameter: '{param}.name'.", param=f"{param}.name",
                                 code="missing_required_parameter")
        if name not in self.functions:
            raise InvalidRequest(f"Tool choice '{name}' not found in 'tools' parameter.", param=f"{param}.name",
                                 code="invalid_value")
        return {name}

    def invented(self, name: str) -> Offer:
        return FunctionOffer(name, None)


class FunctionKind(ToolKind):
    type = "function"
    choice_types = ("function",)
    item_types = (ItemType("function_call", "fc", _replay_call),
                  ItemType("function_call_output", "fco", _replay_output))
    _ECHOED = ("type", "name", "description", "parameters", "strict")

    def as_given(self, declaration: dict[str, Any]) -> dict[str, Any]:
        """OpenAI accepts a function tool without ``strict``/``parameters``; the SDK's type requires them."""
        return {"strict": None, "parameters": None, **declaration}

    def echo(self, declaration: dict[str, Any]) -> dict[str, Any]:
        """Echoed with every key its type has: a missing ``strict`` is a null, as OpenAI answers."""
        return {**dict.fromkeys(self._ECHOED), **declaration}

    def group(self, declarations: list[tuple[str, dict[str, Any]]], names: Names, setup: ToolSetup) -> ToolGroup:
        return FunctionGroup(self, declarations, names)
