"""Reading a backend's chat-completion chunks as a sequence of simple deltas."""

from __future__ import annotations

from dataclasses import dataclass

from rejoinder.backends import chunk as wire


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class RefusalDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    index: int
    call_id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int


Delta = TextDelta | ReasoningDelta | RefusalDelta | ToolCallDelta | Finish | Usage


def _usage(u: wire.Usage) -> Usage:
    prompt = u.get("prompt_tokens_details") or {}
    completion = u.get("completion_tokens_details") or {}
    return Usage(u.get("prompt_tokens") or 0, u.get("completion_tokens") or 0, prompt.get("cached_tokens") or 0,
                 completion.get("reasoning_tokens") or 0)


def deltas(chunk: wire.Chunk) -> list[Delta]:
    """A chunk's deltas, in the order the engine applies them (a list: a generator cost more than
    the work on the common one-piece chunk)."""
    usage = chunk.get("usage")
    out: list[Delta] = [] if usage is None else [_usage(usage)]
    choices = chunk.get("choices")
    if not choices:
        return out
    choice = choices[0]
    d = choice.get("delta")
    if d:
        reasoning = d.get("reasoning_content") or d.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            out.append(ReasoningDelta(reasoning))
        content = d.get("content")
        if content:
            out.append(TextDelta(content))
        refusal = d.get("refusal")
        if refusal:
            out.append(RefusalDelta(refusal))
        calls = d.get("tool_calls")
        if calls:
            for position, call in enumerate(calls):
                fn = call.get("function") or {}
                index = call.get("index")
                out.append(ToolCallDelta(
                    index=position if index is None else index,
                    call_id=call.get("id"),
                    name=fn.get("name"),
                    arguments=fn.get("arguments") or "",
                ))
    finish = choice.get("finish_reason")
    if finish:
        out.append(Finish(finish))
    return out
