"""A chat-completion chunk as backends hand it to the engine: the wire JSON, checked by pydantic-core.

The SDK's ``ChatCompletionChunk`` model took 8 µs a chunk to build (a model instance per choice,
delta and tool call), a tenth of a short turn's own work; validating the same JSON into these
TypedDicts takes ~3 µs. They type only the fields Rejoinder reads, each as loosely as OpenAI, vLLM,
Ollama and llama.cpp send it; every other field is kept as it came (``extra="allow"``), so a
recording holds the chunk whole. Their shape is the SDK's: ``openai.types.chat.ChatCompletionChunk``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

_KEEP_EXTRA = ConfigDict(extra="allow")


@with_config(_KEEP_EXTRA)
class ToolCallFunction(TypedDict, total=False):
    name: str | None
    arguments: str | None


@with_config(_KEEP_EXTRA)
class ToolCall(TypedDict, total=False):
    index: int | None
    id: str | None
    type: str | None
    function: ToolCallFunction | None


@with_config(_KEEP_EXTRA)
class ChoiceDelta(TypedDict, total=False):
    role: str | None
    content: str | None
    refusal: str | None
    reasoning_content: Any  # no SDK field: servers add reasoning text under either name
    reasoning: Any
    tool_calls: list[ToolCall] | None


@with_config(_KEEP_EXTRA)
class TopLogprob(TypedDict, total=False):
    token: str
    logprob: float
    bytes: list[int] | None


@with_config(_KEEP_EXTRA)
class TokenLogprob(TypedDict, total=False):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob] | None


@with_config(_KEEP_EXTRA)
class ChoiceLogprobs(TypedDict, total=False):
    content: list[TokenLogprob] | None


@with_config(_KEEP_EXTRA)
class Choice(TypedDict, total=False):
    index: Any  # not read
    delta: ChoiceDelta | None
    finish_reason: str | None
    logprobs: ChoiceLogprobs | None  # when the request asked for them


@with_config(_KEEP_EXTRA)
class PromptTokensDetails(TypedDict, total=False):
    cached_tokens: int | None


@with_config(_KEEP_EXTRA)
class CompletionTokensDetails(TypedDict, total=False):
    reasoning_tokens: int | None


@with_config(_KEEP_EXTRA)
class Usage(TypedDict, total=False):
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    prompt_tokens_details: PromptTokensDetails | None
    completion_tokens_details: CompletionTokensDetails | None


@with_config(_KEEP_EXTRA)
class Chunk(TypedDict, total=False):
    id: Any  # not read, so not checked: kept as sent (a float ``created`` is no reason to fail)
    object: Any
    created: Any
    model: Any
    choices: list[Choice] | None
    usage: Usage | None
    error: Any  # some servers send ``{"error": ...}`` mid-stream


_ADAPTER = TypeAdapter(Chunk)
_LIST_ADAPTER = TypeAdapter(list[Chunk])


class MalformedChunk(ValueError):
    """Not a chat-completion chunk, or an error payload in its place (the message says which, for
    the client; the backend's own text is not passed on)."""


def _checked(chunk: Chunk) -> Chunk:
    if chunk.get("error"):
        raise MalformedChunk("The model backend reported an error mid-stream.")
    return chunk


def _malformed(exc: ValidationError) -> MalformedChunk:
    return MalformedChunk(f"The model backend sent a malformed chunk ({exc.error_count()} problem(s) at "
                          f"{', '.join('.'.join(map(str, e['loc'])) or 'top level' for e in exc.errors()[:3])}).")


def chunk_from_json(data: str | bytes) -> Chunk:
    try:
        return _checked(_ADAPTER.validate_json(data))
    except ValidationError as exc:
        raise _malformed(exc) from None


def chunks_from_json(payloads: list[bytes]) -> list[Chunk]:
    """Chunks that arrived together, validated in one call: a burst of twenty cost 15% less than
    twenty calls. MalformedChunk if any one is not clean; ``chunk_from_json`` then tells which."""
    if len(payloads) == 1:
        return [chunk_from_json(payloads[0])]
    try:
        chunks = _LIST_ADAPTER.validate_json(b"[" + b",".join(payloads) + b"]")
    except ValidationError as exc:
        raise _malformed(exc) from None
    # One payload holding two values (``{}, {}``) would add an element: the counts must agree.
    if len(chunks) != len(payloads) or any(chunk.get("error") for chunk in chunks):
        raise MalformedChunk("The model backend sent a malformed chunk.")
    return chunks


def chunk_from_python(data: Any) -> Chunk:
    try:
        return _checked(_ADAPTER.validate_python(data))
    except ValidationError as exc:
        raise _malformed(exc) from None


def make_chunk(chunk_id: str, created: int, model: str, delta: ChoiceDelta | None = None,
               finish_reason: str | None = None, usage: Usage | None = None) -> Chunk:
    """A chunk as OpenAI sends it: one choice, or (with ``usage``) the closing usage chunk."""
    choices: list[Choice] = [] if usage is not None else [
        {"index": 0, "delta": delta or {}, "finish_reason": finish_reason}]
    chunk: Chunk = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": choices}
    if usage is not None:
        chunk["usage"] = usage
    return chunk
