"""Chat-completions messages -> the embedded model's prompt tokens, within its context window.

The GGUF's own chat template renders the prompt (so another model file works too), after the
messages are reduced to what a text-only template understands: string contents, calls written as
the JSON the grammar makes the model produce, tool results as ``tool`` turns. ``truncation:
"auto"`` happened before, in the engine, as for every backend (``engine/truncation.py``, counting
with this model's tokenizer and template): a prompt that still does not fit is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rejoinder.backends.embedded_grammar import render_call
from rejoinder.backends.refusal import BackendRefusal, context_length_exceeded

MIN_OUTPUT_TOKENS = 16  # the smallest max_output_tokens the API accepts


def _text(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    out = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            out.append(part.get("text", ""))
        elif kind == "refusal":
            out.append(part.get("refusal", ""))
        else:
            raise BackendRefusal(f"The embedded model reads text only; it cannot take '{kind}' content.", 400)
    return "".join(out)


def template_messages(messages: list[dict[str, Any]], tool_text: str | None) -> list[dict[str, str]]:
    """Plain ``{role, content}`` turns; system and developer text first, then the tool instructions."""
    system: list[str] = []
    turns: list[dict[str, str]] = []
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(_text(m.get("content")))
        elif role == "assistant":
            parts = [_text(m.get("content"))]
            for call in m.get("tool_calls") or []:
                fn = call.get("function") or {}
                parts.append(render_call(fn.get("name", ""), fn.get("arguments", "")))
            turns.append({"role": "assistant", "content": "\n".join(p for p in parts if p)})
        elif role == "tool":
            turns.append({"role": "tool", "content": _text(m.get("content"))})
        else:
            turns.append({"role": "user", "content": _text(m.get("content"))})
    if tool_text:
        system.append(tool_text)
    head = [{"role": "system", "content": "\n\n".join(s for s in system if s)}] if system else []
    return head + turns


@dataclass
class Prompt:
    tokens: list[int]
    max_tokens: int  # what the answer may use


def fit(
    turns: list[dict[str, str]],
    tokenize: Callable[[list[dict[str, str]]], list[int]],
    n_ctx: int,
    max_tokens: int | None,
) -> Prompt:
    """Tokenize ``turns``; the prompt must leave room for an answer in ``n_ctx``."""
    tokens = tokenize(turns)
    room = n_ctx - len(tokens)
    if room < MIN_OUTPUT_TOKENS:
        raise context_length_exceeded(
            f"The input is {len(tokens)} tokens; with room for an answer it does not fit the embedded "
            f"model's context window of {n_ctx} tokens. Shorten the input or set truncation to 'auto'.",
            n_ctx, len(tokens))
    return Prompt(tokens, min(max_tokens or room, room))  # a long answer stops at the window ("incomplete")


def input_texts(request_input: Any) -> list[str]:
    """The text of each message in a Responses ``input`` (a lower bound of what the prompt holds)."""
    if isinstance(request_input, str):
        return [request_input]
    out = []
    for item in request_input or []:
        if not isinstance(item, dict):
            continue
        content = item.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.append("".join(p.get("text", "") for p in content if isinstance(p, dict)))
        elif item.get("type") == "function_call_output":
            output = item.get("output")
            out.append(output if isinstance(output, str) else json.dumps(output))
    return out
