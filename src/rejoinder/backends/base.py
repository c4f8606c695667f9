"""The one interface every inference backend implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from rejoinder.backends.chunk import Chunk


class ChatBackend(Protocol):
    """Streams a chat completion. ``body`` is the exact JSON body of ``POST /v1/chat/completions``.

    It yields non-empty batches of chunks (``chunk.py``: the wire JSON, validated): the chunks that
    arrived together, so a burst costs the engine one pass rather than one per chunk. A backend
    that fails mid-batch yields what it read first."""

    def stream(self, body: dict[str, Any]) -> AsyncIterator[list[Chunk]]: ...

    async def aclose(self) -> None: ...


@dataclass
class ModelRoute:
    """A public model name and where its requests go."""

    name: str
    backend: ChatBackend
    upstream_model: str
    max_tokens_param: str = "max_tokens"
    owned_by: str = "rejoinder"
    context_window: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
