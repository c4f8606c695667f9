"""Custom (freeform) tools: the model writes the tool's input as free text, not JSON arguments.

A chat-completions model sees a function of the same name with one required string parameter,
``input``. Its call becomes a ``custom_tool_call`` whose ``input`` is exactly that string (Codex
refuses a ``function_call`` named apply_patch), streamed as ``response.custom_tool_call_input``
events; the client answers with a ``custom_tool_call_output``, which the model reads as the tool's
result. A tool with a grammar (``format: {type: grammar}``) has every call checked against it
before the client sees anything (tools/checked_call.py); the embedded model is also constrained by
it while it writes (backends/embedded_grammar.py reads ``GRAMMAR_KEY``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from openai.types import responses as T

from rejoinder.engine.events import Event, ResponseState
from rejoinder.errors import InvalidRequest
from rejoinder.ids import new_id
from rejoinder.item_types import ItemType, ReplayCall, Replayed, ReplayOutput, ReplayScope
from rejoinder.tools.checked_call import Attempts, CheckedCall
from rejoinder.tools.function import output_text
from rejoinder.tools.grammar import GRAMMAR_KEY, GrammarError, ToolGrammar, grammar_of
from rejoinder.tools.interface import CallEnv, ModelCall, Names, Offer, ToolGroup, ToolKind
from rejoinder.tools.string_stream import StringField, final_input

if TYPE_CHECKING:
    from rejoinder.tools.interface import ToolSetup

INPUT_FIELD = "input"
INPUT_SCHEMA = {"type": "object", "properties": {INPUT_FIELD: {"type": "string"}}, "required": [INPUT_FIELD],
                "additionalProperties": False}


def arguments_of(input_text: str) -> str:
    """A custom call's input as the function arguments the model wrote."""
    import json

    return json.dumps({INPUT_FIELD: input_text})


def _replay_call(item: dict[str, Any], scope: ReplayScope) -> Replayed:
    name = scope.name(item["namespace"], item["name"]) if item.get("namespace") else item["name"]
    return ReplayCall(item["call_id"], name, arguments_of(item.get("input", "")))


def _replay_output(item: dict[str, Any], scope: ReplayScope) -> Replayed:
    return ReplayOutput(item["call_id"], output_text(item.get("output")))


def check_declaration(tool: dict[str, Any], param: str) -> ToolGrammar | None:
    """The tool's grammar, compiled; a malformed one is a 400 naming its definition."""
    try:
        return grammar_of(tool)
    except GrammarError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "malformed grammar"
        raise InvalidRequest(f"Invalid '{param}.format.definition': the {tool['format']['syntax']} grammar does "
                             f"not compile: {first}", param=f"{param}.format.definition",
                             code="invalid_value") from exc


class StreamedInput(ModelCall):
    """A call without a grammar: its item starts at once and its input streams as it is decoded."""

    def __init__(self, state: ResponseState, index: int):
        self.state = state
        self.index = index
        self.field = StringField(INPUT_FIELD)

    def delta(self, text: str) -> list[Event]:
        piece = self.field.feed(text)
        if not piece:
            return []
        self.state.output[self.index]["input"] += piece
        return [self.state.item_event(T.ResponseCustomToolCallInputDeltaEvent,
                                      "response.custom_tool_call_input.delta", self.index, delta=piece)]

    def done(self) -> list[Event]:
        item = self.state.output[self.index]
        whole = final_input(self.field.raw)
        events: list[Event] = []
        if whole != item["input"]:  # the model wrote something other than {"input": "..."}
            if whole.startswith(item["input"]):
                rest = whole[len(item["input"]):]
                item["input"] = whole
                events.append(self.state.item_event(T.ResponseCustomToolCallInputDeltaEvent,
                                                    "response.custom_tool_call_input.delta", self.index,
                                                    delta=rest))
            else:
                item["input"] = whole  # .done carries the input the client acts on
        events.append(self.state.item_event(T.ResponseCustomToolCallInputDoneEvent,
                                            "response.custom_tool_call_input.done", self.index,
                                            input=item["input"]))
        return [*events, self.state.item_done(self.index)]


class CustomOffer(Offer):
    def __init__(self, name: str, declaration: dict[str, Any], namespace: str | None, attempts: Attempts,
                 grammar: ToolGrammar | None):
        self.name = name
        self.declaration = declaration
        self.namespace = namespace
        self.attempts = attempts
        self.grammar = grammar

    def chat_tool(self) -> dict[str, Any]:
        description = self.declaration.get("description") or ""
        if self.grammar is not None:
            description += (f"\n\nThe `{INPUT_FIELD}` string must match this {self.grammar.syntax} grammar:\n"
                            f"{self.grammar.definition}")
        fn: dict[str, Any] = {"name": self.name, "parameters": INPUT_SCHEMA}
        if description.strip():
            fn["description"] = description.strip()
        if self.grammar is not None:
            fn[GRAMMAR_KEY] = {"syntax": self.grammar.syntax, "definition": self.grammar.definition}
        return {"type": "function", "function": fn}

    def _item(self, call_id: str, input_text: str) -> dict[str, Any]:
        item = {"id": new_id("ctc"), "type": "custom_tool_call", "call_id": call_id,
                "name": self.declaration["name"], "input": input_text}
        if self.namespace is not None:
            item["namespace"] = self.namespace
        return item

    def begin(self, env: CallEnv, call_id: str) -> tuple[ModelCall, list[Event]]:
        env.observer.tool_called("custom")
        if self.grammar is None:
            index, added = env.state.add_item(self._item(call_id, ""))
            return StreamedInput(env.state, index), [added]
        grammar = self.grammar

        def check(arguments: str) -> tuple[dict[str, Any] | None, str | None]:
            text = final_input(arguments)
            problem = grammar.mismatch(text)
            if problem is not None:
                return None, f"its `{INPUT_FIELD}` does not match the tool's {grammar.syntax} grammar: {problem}"
            return self._item(call_id, text), None

        def events(index: int) -> list[Event]:
            text = env.state.output[index]["input"]
            return [env.state.item_event(T.ResponseCustomToolCallInputDeltaEvent,
                                         "response.custom_tool_call_input.delta", index, delta=text),
                    env.state.item_event(T.ResponseCustomToolCallInputDoneEvent,
                                         "response.custom_tool_call_input.done", index, input=text)]

        return CheckedCall(env, call_id, self.name, check, self.attempts, events), []


class CustomGroup(ToolGroup):
    def __init__(self, kind: CustomKind, declarations: list[tuple[str, dict[str, Any]]], names: Names):
        self.kind = kind
        self.attempts = Attempts()
        self.tools: dict[str, CustomOffer] = {}
        for param, tool in declarations:
            if tool["name"] in self.tools or tool["name"] in names.taken:
                raise InvalidRequest(f"Duplicate tool name '{tool['name']}': another tool of this request has it.",
                                     param=f"{param}.name")
            grammar = check_declaration(tool, param)
            self.tools[tool["name"]] = CustomOffer(names.claim(tool["name"]), tool, None, self.attempts, grammar)

    def offers(self) -> Sequence[Offer]:
        return list(self.tools.values())

    def choose(self, choice: dict[str, Any], param: str, allowed: bool) -> set[str]:
        name = choice.get("name")
        if name not in self.tools:
            raise InvalidRequest(f"Tool choice '{name}' not found in 'tools' parameter.", param=f"{param}.name",
                                 code="invalid_value")
        return {self.tools[name].name}


class CustomKind(ToolKind):
    type = "custom"
    choice_types = ("custom",)
    item_types = (ItemType("custom_tool_call", "ctc", _replay_call),
                  ItemType("custom_tool_call_output", "ctco", _replay_output))

    def group(self, declarations: list[tuple[str, dict[str, Any]]], names: Names, setup: ToolSetup) -> ToolGroup:
        return CustomGroup(self, declarations, names)
