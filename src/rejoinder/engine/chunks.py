"""Reading a backend's chat-completion chunks as a sequence of simple deltas."""

from __future__ import annotations

from collections.abc import Iterator
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


def deltas(chunk: wire.Chunk) -> Iterator[Delta]:
    usage = chunk.get("usage")
    if usage is not None:
        yield _usage(usage)
    choices = chunk.get("choices")
    if not choices:
        return
    choice = choices[0]
    d = choice.get("delta")
    if d:
        reasoning = d.get("reasoning_content") or d.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            yield ReasoningDelta(reasoning)
        if d.get("content"):
            yield TextDelta(d["content"])  # type: ignore[arg-type]
        if d.get("refusal"):
            yield RefusalDelta(d["refusal"])  # type: ignore[arg-type]
        for position, call in enumerate(d.get("tool_calls") or ()):
            fn = call.get("function") or {}
            index = call.get("index")
            yield ToolCallDelta(
                index=position if index is None else index,
                call_id=call.get("id"),
                name=fn.get("name"),
                arguments=fn.get("arguments") or "",
            )
    if choice.get("finish_reason"):
        yield Finish(choice["finish_reason"])  # type: ignore[arg-type]
