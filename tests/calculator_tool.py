"""A small, real server-executed tool kind, for tests: the whole of a new server tool in one module.

It serves ``{"type": "code_interpreter", "container": ...}`` with a calculator: the model is
offered ``python(code)``; a call becomes a ``code_interpreter_call`` item whose code streams as
``response.code_interpreter_call_code.delta``/``.done`` events, then the server evaluates the
arithmetic (``ast``, numbers and + - * / ** % // only), and the item's ``logs`` output is what
the model reads back on the next step and on replay. Registered in one line:
``create_app(settings, tools=BUILTIN.with_kinds(CalculatorKind()))``.
"""

from __future__ import annotations

import ast
import json
import operator
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from openai.types import responses as T

from rejoinder.engine.events import Event, ResponseState
from rejoinder.ids import new_id
from rejoinder.item_types import ItemType, ReplayCall, Replayed, ReplayScope
from rejoinder.tools.interface import CallEnv, ModelCall, Names, Offer, ToolGroup, ToolKind, ToolSetup

_OPS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.Pow: operator.pow, ast.Mod: operator.mod, ast.FloorDiv: operator.floordiv, ast.USub: operator.neg,
}


def evaluate(code: str) -> str:
    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.operand))
        raise ValueError(f"unsupported: {ast.dump(node)[:40]}")

    return str(walk(ast.parse(code.strip(), mode="eval")))


def _replay(item: dict[str, Any], scope: ReplayScope) -> Replayed:
    logs = "".join(o.get("logs", "") for o in item.get("outputs") or [])
    return ReplayCall(item["id"], "python", json.dumps({"code": item.get("code") or ""}), logs)


class CalculatorCall(ModelCall):
    on_server = True

    def __init__(self, state: ResponseState, container: str):
        self.state = state
        self.arguments = ""
        item = {"id": new_id("ci"), "type": "code_interpreter_call", "status": "in_progress", "code": "",
                "container_id": container, "outputs": None}
        self.index, added = state.add_item(item)
        self.started = [added, state.item_event(T.ResponseCodeInterpreterCallInProgressEvent,
                                                "response.code_interpreter_call.in_progress", self.index)]

    def delta(self, text: str) -> list[Event]:
        self.arguments += text  # JSON arrives in pieces: the code is streamed once it parses
        return []

    def done(self) -> list[Event]:
        item = self.state.output[self.index]
        try:
            item["code"] = str(json.loads(self.arguments or "{}").get("code", ""))
        except (ValueError, AttributeError):
            item["code"] = ""
        return [
            self.state.item_event(T.ResponseCodeInterpreterCallCodeDeltaEvent,
                                  "response.code_interpreter_call_code.delta", self.index, delta=item["code"]),
            self.state.item_event(T.ResponseCodeInterpreterCallCodeDoneEvent,
                                  "response.code_interpreter_call_code.done", self.index, code=item["code"]),
        ]

    async def run(self) -> AsyncIterator[list[Event]]:
        item = self.state.output[self.index]
        yield [self.state.item_event(T.ResponseCodeInterpreterCallInterpretingEvent,
                                     "response.code_interpreter_call.interpreting", self.index)]
        try:
            logs = evaluate(item["code"])
        except (ValueError, SyntaxError, ArithmeticError) as exc:
            logs = f"Error: {exc}"
        item.update(status="completed", outputs=[{"type": "logs", "logs": logs}])
        yield [self.state.item_event(T.ResponseCodeInterpreterCallCompletedEvent,
                                     "response.code_interpreter_call.completed", self.index),
               self.state.item_done(self.index)]


class CalculatorOffer(Offer):
    name = "python"

    def __init__(self, container: str):
        self.container = container

    def chat_tool(self) -> dict[str, Any]:
        return {"type": "function", "function": {
            "name": self.name, "description": "Evaluate an arithmetic expression.",
            "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}}}

    def on_server(self) -> bool:
        return True

    def begin(self, env: CallEnv, call_id: str) -> tuple[ModelCall, list[Event]]:
        call = CalculatorCall(env.state, self.container)
        return call, call.started


class CalculatorGroup(ToolGroup):
    def __init__(self, kind: CalculatorKind, declarations: list[tuple[str, dict[str, Any]]], names: Names):
        self.kind = kind
        self.offer = None
        if declarations:
            container = declarations[0][1].get("container")
            self.offer = CalculatorOffer(container if isinstance(container, str) else "cntr_calculator")
            names.claim(self.offer.name)

    def offers(self) -> Sequence[Offer]:
        return [self.offer] if self.offer else []


class CalculatorKind(ToolKind):
    type = "code_interpreter"
    on_server = True
    item_types = (ItemType("code_interpreter_call", "ci", _replay),)

    def group(self, declarations: list[tuple[str, dict[str, Any]]], names: Names, setup: ToolSetup) -> ToolGroup:
        return CalculatorGroup(self, declarations, names)
