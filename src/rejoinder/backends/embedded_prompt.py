"""Chat-completions messages -> the embedded model's prompt tokens, within its context window.

The GGUF's own chat template renders the prompt (so another model file works too), after the
messages are reduced to what a text-only template understands: string contents, calls written as
the JSON the grammar makes the model produce, tool results as ``tool`` turns. With
``truncation: "auto"`` the oldest turns are dropped (system messages stay) until the prompt and
room for the answer fit; otherwise a prompt that does not fit is the client's error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rejoinder.backends.embedded_grammar import render_call
from rejoinder.errors import BackendError

MIN_OUTPUT_TOKENS = 16  # the smallest max_output_tokens the API accepts
DEFAULT_ANSWER_ROOM = 256  # kept free for the answer when truncating without max_output_tokens


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
            raise BackendError(f"The embedded model reads text only; it cannot take '{kind}' content.",
                               "invalid_prompt", 400)
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


def _drop_oldest(turns: list[dict[str, str]], n: int) -> list[dict[str, str]]:
    """Drop the first ``n`` turns, plus any tool results left without the call they answer."""
    rest = turns[n:]
    while len(rest) > 1 and rest[0]["role"] == "tool":
        rest = rest[1:]
    return rest


@dataclass
class Prompt:
    tokens: list[int]
    max_tokens: int  # what the answer may use
    dropped: int  # turns removed by truncation


def fit(
    turns: list[dict[str, str]],
    tokenize: Callable[[list[dict[str, str]]], list[int]],
    n_ctx: int,
    max_tokens: int | None,
    truncate: bool,
) -> Prompt:
    """Tokenize ``turns`` so that the prompt plus the answer fits ``n_ctx``."""
    tokens = tokenize(turns)
    room = n_ctx - len(tokens)
    if room >= MIN_OUTPUT_TOKENS:  # it fits; a long answer just stops at the window ("incomplete")
        return Prompt(tokens, min(max_tokens or room, room), 0)
    system = turns[:1] if turns and turns[0]["role"] == "system" else []
    body = turns[len(system):]
    if not truncate or len(body) < 2:
        hint = "Shorten the input." if truncate else "Shorten the input or set truncation to 'auto'."
        raise BackendError(
            f"The input is {len(tokens)} tokens; with room for an answer it does not fit the embedded "
            f"model's context window of {n_ctx} tokens. {hint}", "invalid_prompt", 400,
        )
    want = min(max_tokens or DEFAULT_ANSWER_ROOM, max(n_ctx // 2, MIN_OUTPUT_TOKENS))

    def attempt(n: int) -> list[int]:
        return tokenize(system + _drop_oldest(body, n))

    lo, hi = 1, len(body) - 1  # keep at least the newest turn
    best: list[int] | None = None
    best_n = hi
    while lo <= hi:  # the fewest dropped turns that leave room: tokens shrink as more turns go
        mid = (lo + hi) // 2
        candidate = attempt(mid)
        if n_ctx - len(candidate) >= want:
            best, best_n, hi = candidate, mid, mid - 1
        else:
            lo = mid + 1
    if best is None:  # no cut leaves the preferred room; take the deepest cut if it leaves any
        best = attempt(best_n)
        if n_ctx - len(best) < MIN_OUTPUT_TOKENS:
            raise BackendError(
                f"Even truncated to its newest turn, the input does not fit the embedded model's context "
                f"window of {n_ctx} tokens.", "invalid_prompt", 400,
            )
    room = n_ctx - len(best)
    return Prompt(best, min(max_tokens or room, room), best_n)


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
