"""Reading a backend's chat-completion chunks as a sequence of simple deltas."""

from __future__ import annotations

from dataclasses import dataclass

from rejoinder.backends import chunk as wire


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str
    logprobs: list[wire.TokenLogprob] | None = None  # the chunk's tokens, when the request asked for them


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
            logprobs = choice.get("logprobs")
            out.append(TextDelta(content, logprobs.get("content")) if logprobs else TextDelta(content))
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


_TEXTS = (TextDelta, ReasoningDelta, RefusalDelta)


def _continues(delta: Delta, first: Delta) -> bool:
    """Whether ``delta`` extends the run of deltas that ``first`` opened."""
    kind = type(delta)
    if kind is not type(first):
        return False
    if kind is ToolCallDelta:
        return (delta.index == first.index  # type: ignore[union-attr]
                and delta.call_id is None and delta.name is None)  # type: ignore[union-attr]
    return kind in _TEXTS


def batch_deltas(chunks: list[wire.Chunk]) -> list[Delta]:
    """The deltas of chunks that arrived together, each run of one kind joined: the same text as
    one delta event instead of one per chunk, which the client would have read at once anyway.
    Fragments of one tool call's arguments join too; a fragment that names the call or gives its
    id stays apart. A burst of twenty text chunks made twenty events; it now makes one. A model
    paced token by token sends one chunk a batch: nothing changes for it."""
    if len(chunks) == 1:
        return deltas(chunks[0])
    flat = [delta for chunk in chunks for delta in deltas(chunk)]
    out: list[Delta] = []
    start, n = 0, len(flat)
    while start < n:
        first, end = flat[start], start + 1
        while end < n and _continues(flat[end], first):
            end += 1
        if end - start == 1:
            out.append(first)
        elif isinstance(first, TextDelta):
            run = flat[start:end]
            tokens = [t for d in run for t in (d.logprobs or ())]  # type: ignore[union-attr]
            out.append(TextDelta("".join(d.text for d in run), tokens or None))  # type: ignore[union-attr]
        elif isinstance(first, ToolCallDelta):
            out.append(ToolCallDelta(first.index, first.call_id, first.name,
                                     "".join(d.arguments for d in flat[start:end])))  # type: ignore[union-attr]
        else:
            out.append(type(first)("".join(d.text for d in flat[start:end])))  # type: ignore[call-arg, union-attr, arg-type]
        start = end
    return out
