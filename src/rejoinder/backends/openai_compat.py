"""Any OpenAI-compatible ``/v1/chat/completions`` endpoint: OpenAI, vLLM, Ollama, llama.cpp server.

The request goes through the ``openai`` SDK's client (auth, base URL, headers, status errors) on its
aiohttp transport, but the stream is read raw: the SDK's generic chunk builder (``construct_type``)
costs ~90 µs a chunk in pure Python, while pydantic-core validates the same JSON into the same
``ChatCompletionChunk`` in ~5 µs. That was most of Rejoinder's per-turn overhead. The body is sent
as built (``client.post``), skipping the SDK's per-call TypedDict transform of every message.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import orjson
import pydantic
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
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
        return BackendError("The model backend timed out.", "server_error")
    if isinstance(exc, openai.APIConnectionError):
        return BackendError("The model backend could not be reached.", "server_error")
    if isinstance(exc, httpx2.TransportError):
        return BackendError("The connection to the model backend broke.", "server_error")
    return BackendError("The model backend failed.", "server_error")


def parse_chunk(data: str) -> ChatCompletionChunk:
    """Validate strictly (fast, in pydantic-core); fall back to the SDK's lenient build for servers
    whose chunks bend the schema (an empty ``finish_reason``, a missing ``created``...). An
    ``{"error": ...}`` payload, which some servers send mid-stream, fails the backend call."""
    try:
        return ChatCompletionChunk.model_validate_json(data)
    except pydantic.ValidationError:
        payload = orjson.loads(data)
        if not isinstance(payload, dict) or payload.get("error"):
            raise BackendError("The model backend reported an error mid-stream.", "server_error") from None
        return ChatCompletionChunk.construct(**payload)


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined with newlines, per the spec)."""
    parts: list[str] = []
    async for line in lines:
        if line.startswith("data:"):
            parts.append(line[6:] if line.startswith("data: ") else line[5:])
        elif not line and parts:
            yield "\n".join(parts)
            parts = []
    if parts:
        yield "\n".join(parts)


class OpenAICompatBackend:
    def __init__(self, base_url: str, api_key: str | None, timeout: float = 600.0):
        # The SDK's aiohttp transport: its C HTTP parser costs ~1 ms less CPU per turn than the
        # default pure-Python HTTP/1.1 stack (measured with bench/bench_core.py).
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=0,
            http_client=openai.DefaultAioHttpClient(timeout=timeout),
        )

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
        try:
            # ``cast_to=httpx2.Response`` asks the SDK for the unread response; status errors are still
            # raised by the SDK as APIStatusError before we get it.
            response = await self.client.post(
                "/chat/completions", body=body, cast_to=httpx2.Response, stream=True
            )
            try:
                done = False
                async for data in sse_data(response.aiter_lines()):
                    # After [DONE] the body is read to its end, so the connection goes back to the
                    # pool instead of being closed (a new TCP connection per turn costs ~0.3 ms).
                    if done:
                        continue
                    if data.startswith("[DONE]"):
                        done = True
                        continue
                    yield parse_chunk(data)
            finally:
                await response.aclose()
        except BackendError:
            raise
        except Exception as exc:  # every upstream failure becomes a BackendError
            log.warning("backend call failed: %r", exc)
            raise backend_error(exc) from exc

    async def aclose(self) -> None:
        await self.client.close()
