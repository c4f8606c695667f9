"""The one interface every inference backend implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from rejoinder.backends.chunk import Chunk

if TYPE_CHECKING:
    from rejoinder.backends.context_window import Discovered
    from rejoinder.backends.openai_compat import OpenAICompatBackend
    from rejoinder.backends.token_count import TokenCounter


@dataclass(frozen=True, slots=True)
class Admission:
    """What a backend is told about the response it serves, on each of its inference steps.

    Made once per response, before its first event, by :meth:`ModelRegistry.admit` (where a backend
    may refuse it with a 4xx), and passed explicitly to every ``stream`` call of that response."""

    admitted: bool = False  # a backend with a line (the embedded model) let it in: later steps wait
    test_id: str | None = None  # record/replay's key (``X-Rejoinder-Test-Id``)


NOT_ADMITTED = Admission()


class ChatBackend(Protocol):
    """Streams a chat completion. ``body`` is the exact JSON body of ``POST /v1/chat/completions``.

    It yields batches of chunks (``chunk.py``: the wire JSON, validated): the chunks that arrived
    together, so a burst costs the engine one pass rather than one per chunk. A backend that fails
    mid-batch yields what it read first. An empty batch says the backend accepted the request (its
    HTTP status) before any chunk: a non-streamed reply's head waits for it, so that a refusal
    before it (``refusal.BackendRefusal``, raised before anything is yielded) can still be the
    client's HTTP error."""

    def stream(self, body: dict[str, Any], admission: Admission = NOT_ADMITTED) -> AsyncIterator[list[Chunk]]: ...

    async def aclose(self) -> None: ...


@dataclass
class ModelRoute:
    """A public model name and where its requests go.

    ``context_window`` is the configured one (the embedded model's ``n_ctx``); ``context_window.py``
    discovers it from the server otherwise. ``template_rules`` are the chat-template rules its
    requests are reshaped for (``chat_templates.py``): the configured ones, and those learned from
    the backend's errors, for the life of the process. ``http`` is the OpenAI-compatible backend
    behind any recorder (None for the embedded model, or when replaying recordings), through which
    the server is asked about itself."""

    name: str
    backend: ChatBackend
    upstream_model: str
    max_tokens_param: str = "max_tokens"
    owned_by: str = "rejoinder"
    context_window: int | None = None
    cache_hints: bool = False  # whether prompt_cache_key / prompt_cache_retention are passed on
    # Checks of a request that must fail before its response starts (a 4xx, not a failed
    # response), and what the backend needs to know of it: see ``ModelRegistry.admit``.
    admit: Callable[[Any, Admission], Admission] | None = None
    template_rules: set[str] = field(default_factory=set)
    http: OpenAICompatBackend | None = None
    token_counter: TokenCounter | None = None  # set for the embedded model
    discovered: Discovered | None = None  # what the server said of itself (context_window.py)
    extra: dict[str, Any] = field(default_factory=dict)
    # Reasoning (engine/reasoning.py): inline <think> blocks read as reasoning ("on"; "open": the
    # prompt opened the block), and how earlier reasoning goes back (engine/chat_request.py).
    think_tags: str = "off"
    reasoning_replay: str = "reasoning_content"
    verbosity: str = "instruction"  # how text.verbosity reaches the model (engine/chat_request.py)
