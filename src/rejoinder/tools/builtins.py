"""Client-executed built-in tools: ``shell``, ``local_shell`` and ``apply_patch``.

The declaration has no schema: the model is offered each as a function with a fixed one. Its call
becomes the built-in's own item (``shell_call`` with an ``action``, ``local_shell_call`` with an
``exec`` action, ``apply_patch_call`` with an ``operation``), checked before the client sees it
(tools/checked_call.py: a call missing its command is retried, never handed over). The client
runs it and answers with the matching ``*_output`` item, which the model reads as the result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rejoinder.engine.events import Event
from rejoinder.errors import InvalidRequest
from rejoinder.ids import new_id
from rejoinder.item_types import ItemType, ReplayCall, Replayed, ReplayOutput, ReplayScope
from rejoinder.tools.checked_call import Attempts, CheckedCall
from rejoinder.tools.interface import CallEnv, ModelCall, Names, Offer, ToolGroup, ToolKind

if TYPE_CHECKING:
    from rejoinder.tools.interface import ToolSetup

_INT = {"type": "integer"}
_STRINGS = {"type": "array", "items": {"type": "string"}}

Parsed = tuple[dict[str, Any] | None, str | None]


def _object(arguments: str) -> dict[str, Any] | str:
    """The arguments as an object, or what is wrong with them."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return "its arguments are not valid JSON."
    return value if isinstance(value, dict) else "its arguments are not a JSON object."


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str) and value.strip():
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def _int_or_none(args: dict[str, Any], key: str) -> int | None:
    value = args.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# -- shell -----------------------------------------------------------------------------------------

def _shell_item(call_id: str, arguments: str) -> Parsed:
    args = _object(arguments)
    if isinstance(args, str):
        return None, args
    commands = _strings(args.get("commands"))
    if commands is None:
        return None, "`commands` must be a non-empty array of command strings."
    action = {"commands": commands, "timeout_ms": _int_or_none(args, "timeout_ms"),
              "max_output_length": _int_or_none(args, "max_output_length")}
    return {"id": new_id("sh"), "type": "shell_call", "call_id": call_id, "action": action,
            "status": "completed"}, None


def _shell_result(item: dict[str, Any]) -> str:
    """Each command's stdout, stderr and outcome, as the model reads them."""
    parts = []
    for entry in item.get("output") or []:
        outcome = entry.get("outcome") or {}
        if outcome.get("type") == "timeout":
            status = "timed out"
        else:
            status = f"exit code {outcome.get('exit_code')}"
        text = entry.get("stdout") or ""
        if entry.get("stderr"):
            text += ("\n" if text else "") + f"stderr:\n{entry['stderr']}"
        parts.append(f"{text}\n[{status}]" if text else f"[{status}]")
    return "\n\n".join(parts)


# -- local_shell -----------------------------------------------------------------------------------

def _local_shell_item(call_id: str, arguments: str) -> Parsed:
    args = _object(arguments)
    if isinstance(args, str):
        return None, args
    command = _strings(args.get("command"))
    if command is None:
        return None, "`command` must be a non-empty array of strings (the program and its arguments)."
    env = args.get("env")
    env = env if isinstance(env, dict) else {}
    action: dict[str, Any] = {"type": "exec", "command": command,
                              "env": {str(k): str(v) for k, v in env.items()},
                              "timeout_ms": _int_or_none(args, "timeout_ms")}
    for key in ("working_directory", "user"):
        if isinstance(args.get(key), str):
            action[key] = args[key]
    return {"id": new_id("lsh"), "type": "local_shell_call", "call_id": call_id, "action": action,
            "status": "completed"}, None


# -- apply_patch -----------------------------------------------------------------------------------

_OPERATIONS = ("create_file", "update_file", "delete_file")


def _apply_patch_item(call_id: str, arguments: str) -> Parsed:
    args = _object(arguments)
    if isinstance(args, str):
        return None, args
    kind, path, diff = args.get("type"), args.get("path"), args.get("diff")
    if kind not in _OPERATIONS:
        return None, f"`type` must be one of {', '.join(_OPERATIONS)}."
    if not isinstance(path, str) or not path:
        return None, "`path` must be the file's path."
    operation: dict[str, Any] = {"type": kind, "path": path}
    if kind != "delete_file":
        if not isinstance(diff, str):
            return None, f"`diff` (a V4A diff of the file's content) is required to {kind.replace('_', ' ')}."
        operation["diff"] = diff
    return {"id": new_id("apc"), "type": "apply_patch_call", "call_id": call_id, "operation": operation,
            "status": "completed"}, None


def _apply_patch_result(item: dict[str, Any]) -> str:
    text = f"[{item.get('status', 'completed')}]"
    return f"{text}\n{item['output']}" if item.get("output") else text


# -- the kinds -------------------------------------------------------------------------------------

def _call_replay(name: str, arguments: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    def replay(item: dict[str, Any], scope: ReplayScope) -> Replayed:
        return ReplayCall(item["call_id"], name, json.dumps(arguments(item)))
    return replay


def _output_replay(text: Callable[[dict[str, Any]], str], call_key: str = "call_id") -> Any:
    def replay(item: dict[str, Any], scope: ReplayScope) -> Replayed:
        return ReplayOutput(item.get(call_key) or item["id"], text(item))
    return replay


def _drop_nulls(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}


class BuiltinOffer(Offer):
    def __init__(self, kind: BuiltinKind, attempts: Attempts):
        self.kind = kind
        self.name = kind.type
        self.attempts = attempts

    def chat_tool(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.kind.description,
                                                 "parameters": self.kind.parameters}}

    def begin(self, env: CallEnv, call_id: str) -> tuple[ModelCall, list[Event]]:
        env.observer.tool_called(self.kind.type)
        make = self.kind.make_item
        return CheckedCall(env, call_id, self.name, lambda arguments: make(call_id, arguments), self.attempts), []


class BuiltinGroup(ToolGroup):
    def __init__(self, kind: BuiltinKind, declarations: list[tuple[str, dict[str, Any]]], names: Names):
        self.kind = kind
        self.offered: list[Offer] = []
        if len(declarations) > 1:
            raise InvalidRequest(f"Duplicate '{kind.type}' tool.", param=f"{declarations[1][0]}.type")
        if declarations:
            if kind.type in names.taken:
                raise InvalidRequest(f"The tool name '{kind.type}' is taken by another tool of this request.",
                                     param=f"{declarations[0][0]}.type")
            names.claim(kind.type)
            self.offered.append(BuiltinOffer(kind, Attempts()))

    def offers(self) -> Sequence[Offer]:
        return self.offered

    def choose(self, choice: dict[str, Any], param: str, allowed: bool) -> set[str]:
        if not self.offered:
            raise InvalidRequest(f"Tool choice '{self.kind.type}' not found in 'tools' parameter.",
                                 param=f"{param}.type", code="invalid_value")
        return {self.kind.type}


class BuiltinKind(ToolKind):
    description: str
    parameters: dict[str, Any]
    make_item: Callable[[str, str], Parsed]

    def group(self, declarations: list[tuple[str, dict[str, Any]]], names: Names, setup: ToolSetup) -> ToolGroup:
        return BuiltinGroup(self, declarations, names)


class ShellKind(BuiltinKind):
    type = "shell"
    choice_types = ("shell",)
    description = ("Run shell commands on the user's machine, in order. Returns each command's output "
                   "and exit code.")
    parameters = {"type": "object", "properties": {"commands": {**_STRINGS, "description": "Commands to run."},
                                                   "timeout_ms": _INT, "max_output_length": _INT},
                  "required": ["commands"], "additionalProperties": False}
    make_item = staticmethod(_shell_item)
    item_types = (ItemType("shell_call", "sh", _call_replay("shell", lambda i: _drop_nulls(i["action"]))),
                  ItemType("shell_call_output", "sho", _output_replay(_shell_result)))


class LocalShellKind(BuiltinKind):
    type = "local_shell"
    description = "Run a program on the user's machine. Returns its output."
    parameters = {"type": "object", "properties": {
        "command": {**_STRINGS, "description": "The program and its arguments, e.g. [\"ls\", \"-la\"]."},
        "working_directory": {"type": "string"}, "timeout_ms": _INT,
        "env": {"type": "object", "additionalProperties": {"type": "string"}}},
        "required": ["command"], "additionalProperties": False}
    make_item = staticmethod(_local_shell_item)
    # The client's output item names the call by ``id`` (the SDK's type); the Agents SDK sends ``call_id``.
    item_types = (ItemType("local_shell_call", "lsh", _call_replay(
                      "local_shell", lambda i: _drop_nulls({k: v for k, v in i["action"].items() if k != "type"}))),
                  ItemType("local_shell_call_output", "lsho",
                           _output_replay(lambda i: str(i.get("output", "")))))


class ApplyPatchKind(BuiltinKind):
    type = "apply_patch"
    choice_types = ("apply_patch",)
    description = ("Create, update or delete one file. For create_file and update_file, `diff` is a V4A diff: "
                   "lines starting with '+' are added, '-' removed, ' ' kept as context, and '@@ <line>' "
                   "locates a change; a new file's diff is every line prefixed with '+'.")
    parameters = {"type": "object", "properties": {"type": {"type": "string", "enum": list(_OPERATIONS)},
                                                   "path": {"type": "string"}, "diff": {"type": "string"}},
                  "required": ["type", "path"], "additionalProperties": False}
    make_item = staticmethod(_apply_patch_item)
    item_types = (ItemType("apply_patch_call", "apc", _call_replay("apply_patch", lambda i: i["operation"])),
                  ItemType("apply_patch_call_output", "apco", _output_replay(_apply_patch_result)))
