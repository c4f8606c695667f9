"""How many tokens a chat-completions body's prompt takes on its model.

One question, three ways of answering it, best first:

- the model's own tokenizer and chat template, in process (the embedded model);
- the backend's tokenizer, asked over HTTP: vLLM's ``POST /tokenize`` (the messages and tools
  through the model's chat template), llama.cpp's ``POST /apply-template`` then ``/tokenize``;
- an estimate, for servers that have no tokenizer endpoint (OpenAI, Ollama) or when asking
  fails: ``estimate()``, one token for every 3 bytes of UTF-8 text (English runs about 4 per
  token, code and other scripts fewer), 8 tokens per message for the template's markers, and
  ``IMAGE_TOKENS`` for an image given by URL. It leans high, so truncating by it drops a little
  more than needed rather than too little; a backend's context-length error corrects the rest.

``upper_bound()`` is a cheaper, sure bound (no tokenizer makes more tokens than UTF-8 bytes)
used to skip counting when a prompt obviously fits. ``count_tokens()`` is the entry point
(truncation, and ``POST /v1/responses/input_tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from rejoinder.backends.base import ModelRoute
from rejoinder.backends.context_window import Discovered, context_window
from rejoinder.backends.openai_compat import upstream_tools

PER_MESSAGE = 8  # a template's role markers and separators, per message
BASE = 256  # a template's fixed text (default system prompts, tool-use instructions)
IMAGE_TOKENS = 4096  # an image given by URL: dynamic-resolution models take up to a few thousand
BYTES_PER_TOKEN = 3


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    exact: bool  # from the model's tokenizer, not an estimate


class TokenCounter(Protocol):
    async def count(self, body: dict[str, Any]) -> TokenCount: ...


def _sizes(body: dict[str, Any]) -> tuple[int, int, int]:
    """(UTF-8 bytes of text, messages, images given by URL) of a chat body's prompt."""
    size = images = 0
    messages = body.get("messages") or []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            size += len(content.encode())
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    size += len(str(part.get("text", "")).encode())
                elif part.get("type") == "image_url":
                    url = str((part.get("image_url") or {}).get("url", ""))
                    if url.startswith("data:"):
                        size += len(url)
                    else:
                        images += 1
                else:
                    size += len(orjson.dumps(part))
        for call in m.get("tool_calls") or []:
            size += len(orjson.dumps(call))
    if body.get("tools"):
        size += len(orjson.dumps(body["tools"]))
    return size, len(messages), images


def upper_bound(body: dict[str, Any]) -> int:
    """Tokens the prompt cannot exceed, whatever the tokenizer (but for images given by URL)."""
    size, messages, images = _sizes(body)
    return BASE + size + PER_MESSAGE * messages + IMAGE_TOKENS * images


def estimate(body: dict[str, Any]) -> int:
    """A conservative estimate of the prompt's tokens (see the module's docstring)."""
    size, messages, images = _sizes(body)
    return -(-size // BYTES_PER_TOKEN) + PER_MESSAGE * messages + IMAGE_TOKENS * images


class EstimateCounter:
    async def count(self, body: dict[str, Any]) -> TokenCount:
        return TokenCount(estimate(body), exact=False)


class VLLMCounter:
    """vLLM's ``POST /tokenize`` with the messages and tools: its count includes the template."""

    def __init__(self, http: Any):
        self.http = http

    async def count(self, body: dict[str, Any]) -> TokenCount:
        ask: dict[str, Any] = {"model": body.get("model"), "messages": body.get("messages") or [],
                               "add_generation_prompt": True}
        if body.get("tools"):
            ask["tools"] = upstream_tools(body["tools"])
        answer = await self.http.request_json("POST", self.http.base_url.removesuffix("/v1") + "/tokenize", ask)
        if isinstance(answer, dict) and isinstance(answer.get("count"), int):
            return TokenCount(answer["count"], exact=True)
        return TokenCount(estimate(body), exact=False)


class LlamaCppCounter:
    """llama.cpp's server: the prompt from ``POST /apply-template``, tokenized by ``POST /tokenize``."""

    def __init__(self, http: Any):
        self.http = http

    async def count(self, body: dict[str, Any]) -> TokenCount:
        root = self.http.base_url.removesuffix("/v1")
        ask: dict[str, Any] = {"messages": body.get("messages") or []}
        if body.get("tools"):
            ask["tools"] = upstream_tools(body["tools"])
        prompt = await self.http.request_json("POST", root + "/apply-template", ask)
        if isinstance(prompt, dict) and isinstance(prompt.get("prompt"), str):
            tokens = await self.http.request_json("POST", root + "/tokenize",
                                                  {"content": prompt["prompt"], "add_special": True})
            if isinstance(tokens, dict) and isinstance(tokens.get("tokens"), list):
                return TokenCount(len(tokens["tokens"]), exact=True)
        return TokenCount(estimate(body), exact=False)


def counter_for(route: ModelRoute, found: Discovered | None) -> TokenCounter:
    if route.token_counter is not None:
        return route.token_counter
    if route.http is not None and found is not None:
        if found.server == "vllm":
            return VLLMCounter(route.http)
        if found.server == "llama.cpp":
            return LlamaCppCounter(route.http)
    return EstimateCounter()


async def count_tokens(route: ModelRoute, body: dict[str, Any]) -> TokenCount:
    """The prompt tokens of ``body`` (a chat-completions body) on ``route``'s model."""
    return await counter_for(route, await context_window(route)).count(body)
