"""Any OpenAI-compatible ``/v1/chat/completions`` endpoint: OpenAI, vLLM, Ollama, llama.cpp server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import openai
from openai.types.chat import ChatCompletionChunk

from rejoinder.errors import BackendError

log = logging.getLogger(__name__)


def backend_error(exc: Exception) -> BackendError:
    """Map a client exception to a spec error code without leaking upstream text to the client."""
    if isinstance(exc, openai.RateLimitError):
        return BackendError("The model backend is rate limited; retry later.", "rate_limit_exceeded", 429)
    if isinstance(exc, openai.APIStatusError):
        code = "invalid_prompt" if exc.status_code == 400 else "server_error"
        return BackendError(f"The model backend returned HTTP {exc.status_code}.", code, exc.status_code)
    if isinstance(exc, openai.APITimeoutError):
        return BackendError("The model backend timed out.", "server_error")
    if isinstance(exc, openai.APIConnectionError):
        return BackendError("The model backend could not be reached.", "server_error")
    return BackendError("The model backend failed.", "server_error")


class OpenAICompatBackend:
    def __init__(self, base_url: str, api_key: str | None, timeout: float = 600.0):
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=0
        )

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
        try:
            stream = await self.client.chat.completions.create(**body)
            async with stream:
                async for chunk in stream:
                    yield chunk
        except BackendError:
            raise
        except Exception as exc:  # every upstream failure becomes a BackendError
            log.warning("backend call failed: %r", exc)
            raise backend_error(exc) from exc

    async def aclose(self) -> None:
        await self.client.close()
