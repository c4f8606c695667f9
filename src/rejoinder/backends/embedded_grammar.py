"""Constrained decoding for the embedded model: tool calls and structured output.

SmolLM2's chat template knows nothing of tools, so the model is told about them in a system
message and a llama.cpp grammar makes its reply either free text or a JSON object
``{"name": <offered tool>, "arguments": <that tool's parameters>}`` (``tool_choice`` decides which
branches exist). ``text.format`` ``json_schema`` / ``json_object`` become a grammar too, so the
output always parses and matches. Converting a schema to GBNF is not free (seconds for big
schemas), so conversions are cached by schema; llama.cpp parses the GBNF again per generation.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

from rejoinder.backends.embedded_guidance import grammar_tools, guidance_grammar, opener
from rejoinder.tools.grammar import GRAMMAR_KEY

# Free text: anything that does not open a JSON object, so the first character tells text from a call.
_TEXT_RULE = 'rj-text ::= [^{ \\t\\r\\n] [^\\x00]*'
_ROOT_DEF = re.compile(r"^root ::=", re.MULTILINE)
_DEF_KEYS = ("$defs", "definitions")

Mode = Literal["text", "json", "call", "auto"]


@dataclass(frozen=True)
class DecodePlan:
    """How one generation is constrained and how its output is read.

    ``text``: free text, streamed. ``json``: structured output, streamed as text. ``call``: one
    tool call, read when complete. ``auto``: a call or a message, told apart by the first
    character (buffered to the end when the message is JSON too).
    """

    mode: Mode
    grammar: LlamaGrammar | None
    tools: tuple[str, ...] = ()
    buffer_all: bool = False
    guidance: str | None = None  # an llguidance grammar instead of ``grammar`` (custom tools' grammars)
    customs: tuple[str, ...] = ()  # the tools called as ``<name>`` + raw input (embedded_guidance.py)


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    return tool.get("function") or {}


def _parameters(tool: dict[str, Any]) -> dict[str, Any]:
    params = _function(tool).get("parameters")
    return params if isinstance(params, dict) and params else {"type": "object", "properties": {}}


def _hoist_defs(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Move ``$defs`` to the combined schema's root, where ``#/$defs/...`` references resolve."""
    schema = dict(schema)
    for key in _DEF_KEYS:
        for name, sub in (schema.pop(key, None) or {}).items():
            root.setdefault(key, {}).setdefault(name, sub)
    return schema


def call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """One JSON object naming one of ``tools`` with arguments valid for that tool."""
    root: dict[str, Any] = {}
    alternatives = []
    for tool in tools:
        alternatives.append({
            "type": "object",
            "properties": {"name": {"enum": [_function(tool)["name"]]},
                           "arguments": _hoist_defs(_parameters(tool), root)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        })
    root["anyOf"] = alternatives
    return root


def format_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The schema of the chat body's ``response_format``, or None for plain text."""
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        return dict(response_format["json_schema"]["schema"])  # type: ignore[index]
    return None


class GrammarCache:
    """Schema -> GBNF conversions and grammar objects; least recently used ones go past ``size``."""

    def __init__(self, size: int = 64):
        self.size = size
        self._gbnf: OrderedDict[str, str] = OrderedDict()
        self._grammars: OrderedDict[str, LlamaGrammar] = OrderedDict()
        self._lock = threading.Lock()

    def gbnf(self, schema: dict[str, Any]) -> str:
        key = json.dumps(schema, sort_keys=True)
        with self._lock:
            if key in self._gbnf:
                self._gbnf.move_to_end(key)
                return self._gbnf[key]
        text = json_schema_to_gbnf(key)
        with self._lock:
            self._gbnf[key] = text
            while len(self._gbnf) > self.size:
                self._gbnf.popitem(last=False)
        return text

    def grammar(self, gbnf: str) -> LlamaGrammar:
        with self._lock:
            if gbnf in self._grammars:
                self._grammars.move_to_end(gbnf)
                return self._grammars[gbnf]
        grammar = LlamaGrammar.from_string(gbnf, verbose=False)
        with self._lock:
            self._grammars[gbnf] = grammar
            while len(self._grammars) > self.size:
                self._grammars.popitem(last=False)
        return grammar


def _offered(tools: list[dict[str, Any]], tool_choice: Any) -> tuple[list[dict[str, Any]], bool]:
    """The tools the model may call and whether it must call one."""
    if not tools or tool_choice == "none":
        return [], False
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name")
        return [t for t in tools if _function(t).get("name") == name], True
    return tools, tool_choice == "required"


# A search result line as ``tools/file_search.py`` and ``tools/web_search.py`` write them: "[n] ... [n]".
_RESULT_LINE = re.compile(r"^\[(\d{1,3})\] .*\[\1\]$", re.MULTILINE)


def citable(messages: list[dict[str, Any]]) -> list[str]:
    """The result markers of the tool results the model is answering now (the trailing tool turns)."""
    numbers: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        content = message.get("content")
        if isinstance(content, str):
            numbers[:0] = _RESULT_LINE.findall(content)
    return list(dict.fromkeys(numbers))


def cited_text_grammar(numbers: list[str]) -> str:
    """One sentence that ends citing one of ``numbers`` (`` [n]``): the small model reads search
    results well but never copies their markers unless the grammar asks for one, and past its
    first sentence it repeats itself. Which result it cites stays its choice."""
    choices = " | ".join(f'"{n}"' for n in numbers)
    return (f'root ::= [^{{ \\t\\r\\n\\[.!?] [^\\[\\x00.!?]{{0,400}} [.!?]? " [" ({choices}) "]"\n')


def _guided_plan(tools: list[dict[str, Any]], must_call: bool, fmt: dict[str, Any] | None) -> DecodePlan:
    customs = grammar_tools(tools)
    plain = [t for t in tools if t not in customs]
    guidance = guidance_grammar(call_schema(plain) if plain else None, customs, must_call, fmt)
    names = tuple(_function(t)["name"] for t in plain)
    custom_names = tuple(_function(t)["name"] for t in customs)
    return DecodePlan("call" if must_call else "auto", None, names, buffer_all=fmt is not None, guidance=guidance,
                      customs=custom_names)


def plan_decoding(body: dict[str, Any], cache: GrammarCache) -> DecodePlan:
    tools, must_call = _offered(body.get("tools") or [], body.get("tool_choice"))
    fmt = format_schema(body.get("response_format"))
    numbers = citable(body.get("messages") or []) if fmt is None else []
    if numbers:  # an answer to search results: a sentence that cites them (no second search)
        return DecodePlan("text", cache.grammar(cited_text_grammar(numbers)))
    names = tuple(_function(t)["name"] for t in tools)
    if grammar_tools(tools):
        return _guided_plan(tools, must_call, fmt)
    if not tools:
        if fmt is None:
            return DecodePlan("text", None)
        return DecodePlan("json", cache.grammar(cache.gbnf(fmt)))
    calls = call_schema(tools)
    if must_call:
        return DecodePlan("call", cache.grammar(cache.gbnf(calls)), names)
    if fmt is not None:  # a call or a JSON answer: both open with "{", so read the whole output
        both = {**calls, "anyOf": [*calls["anyOf"], _hoist_defs(fmt, calls)]}
        return DecodePlan("auto", cache.grammar(cache.gbnf(both)), names, buffer_all=True)
    gbnf = _ROOT_DEF.sub("rj-call ::=", cache.gbnf(calls), count=1)
    return DecodePlan("auto", cache.grammar(f"{gbnf}\nroot ::= rj-call | rj-text\n{_TEXT_RULE}\n"), names)


def _describe(tool: dict[str, Any]) -> str:
    fn = _function(tool)
    if fn.get(GRAMMAR_KEY):
        line = f"- {fn['name']}: reply with the line {opener(fn['name']).strip()} and then the tool's input."
        return f"{line} {fn['description']}" if fn.get("description") else line
    params = _parameters(tool)
    required = set(params.get("required") or [])
    args = []
    for name, spec in (params.get("properties") or {}).items():
        kind = spec.get("type", "any") if isinstance(spec, dict) else "any"
        args.append(f"{name}{'' if name in required else '?'}: {kind}")
    line = f"- {fn['name']}({', '.join(args)})"
    return f"{line}: {fn['description']}" if fn.get("description") else line


def tool_instructions(body: dict[str, Any]) -> str | None:
    """The system text that tells the model which tools exist and how a call looks."""
    tools, must_call = _offered(body.get("tools") or [], body.get("tool_choice"))
    if not tools:
        return None
    how = 'To call a tool, reply with only a JSON object: {"name": "<tool name>", "arguments": {...}}.'
    if must_call and len(tools) == 1:
        lead = f"Call the tool {_function(tools[0])['name']} now."
    elif must_call:
        lead = "Call one of these tools now."
    else:
        lead = "You can call these tools when they help; otherwise answer the user directly."
    return "\n".join([f"{lead} {how}", "Tools:", *(_describe(t) for t in tools)])


def render_call(name: str, arguments: str) -> str:
    """An earlier call as the model would have written it, for the prompt."""
    try:
        args: Any = json.loads(arguments or "{}")
    except ValueError:
        args = arguments
    return json.dumps({"name": name, "arguments": args})


def parse_call(text: str, tools: tuple[str, ...]) -> tuple[str, str] | None:
    """The (name, arguments JSON) of a complete call, or None if ``text`` is not one."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or set(value) != {"name", "arguments"} or value["name"] not in tools:
        return None
    return value["name"], json.dumps(value["arguments"])
