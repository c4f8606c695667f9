"""Reading a backend's chat-completion chunks as a sequence of simple deltas."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from openai.types.chat import ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage


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
    usage: CompletionUsage


Delta = TextDelta | ReasoningDelta | RefusalDelta | ToolCallDelta | Finish | Usage


def deltas(chunk: ChatCompletionChunk) -> Iterator[Delta]:
    if chunk.usage is not None:
        yield Usage(chunk.usage)
    for choice in chunk.choices[:1]:
        d = choice.delta
        # Reasoning text is no field of the SDK's type: servers add it as an extra field. Read the
        # extras dict, as a missing attribute costs pydantic an exception on every chunk.
        extra = d.model_extra or {}
        reasoning = extra.get("reasoning_content") or extra.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            yield ReasoningDelta(reasoning)
        if d.content:
            yield TextDelta(d.content)
        if d.refusal:
            yield RefusalDelta(d.refusal)
        for call in d.tool_calls or []:
            fn = call.function
            yield ToolCallDelta(
                index=call.index,
                call_id=call.id,
                name=fn.name if fn else None,
                arguments=(fn.arguments or "") if fn else "",
            )
        if choice.finish_reason:
            yield Finish(choice.finish_reason)
