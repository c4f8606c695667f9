"""A backend model's context window: from the configuration, or asked of the server.

``context_window: N`` in a model's configuration wins. Otherwise the server is asked, once and
then again every ``TTL`` seconds (what it serves can change), through the three ways servers
tell it, all at once:

- vLLM: ``GET /v1/models``, the model's ``max_model_len``;
- llama.cpp's server: ``GET /props``, ``default_generation_settings.n_ctx`` (the context of one
  slot, what a request gets);
- Ollama: ``GET /api/ps``, the loaded model's ``context_length`` (what it runs with); else
  ``POST /api/show``, ``num_ctx`` in its parameters, else its ``<architecture>.context_length``.

The answer also says which server it is, which decides how tokens are counted
(``token_count.py``). OpenAI and other servers say nothing: the window stays unknown, and a
context-length error is what teaches it (``ModelRoute.context_window`` is then set from the
error's own numbers).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from rejoinder.backends.base import ModelRoute

log = logging.getLogger(__name__)

Server = Literal["vllm", "llama.cpp", "ollama", "embedded"]
TTL = 600.0  # seconds a discovery is trusted


@dataclass(frozen=True)
class Discovered:
    """What is known of a model's context window, and from where."""

    window: int | None
    server: Server | None
    source: str  # for people: "configuration", "vLLM GET /v1/models (max_model_len)", ...
    at: float = 0.0  # time.monotonic() of the discovery


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _entries(payload: Any, key: str) -> list[Any]:
    entries = payload.get(key) if isinstance(payload, dict) else None
    return entries if isinstance(entries, list) else []


def _vllm(models: Any, model: str) -> int | None:
    for card in _entries(models, "data"):
        if isinstance(card, dict) and card.get("id") == model:
            return _int(card.get("max_model_len"))
    return None


def _llama_cpp(props: Any) -> int | None:
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    return _int(settings.get("n_ctx")) if isinstance(settings, dict) else None


def _ollama_running(ps: Any, model: str) -> int | None:
    for entry in _entries(ps, "models"):
        if isinstance(entry, dict) and model in (entry.get("name"), entry.get("model")):
            return _int(entry.get("context_length"))
    return None


def _ollama_show(show: Any) -> tuple[int | None, str]:
    if not isinstance(show, dict):
        return None, ""
    for line in str(show.get("parameters") or "").splitlines():
        name, _, value = line.strip().partition(" ")
        if name == "num_ctx" and value.strip().isdigit():
            return int(value.strip()), "num_ctx"
    info = show.get("model_info")
    if isinstance(info, dict):
        arch = info.get("general.architecture")
        window = _int(info.get(f"{arch}.context_length"))
        if window:
            return window, f"{arch}.context_length"
    return None, ""


async def discover(http: Any, model: str) -> Discovered:
    """Ask the server behind ``http`` (an ``OpenAICompatBackend``) about ``model``."""
    base = http.base_url
    root = base.removesuffix("/v1")
    models, props, ps, show = await asyncio.gather(
        http.request_json("GET", base + "/models"),
        http.request_json("GET", root + "/props"),
        http.request_json("GET", root + "/api/ps"),
        http.request_json("POST", root + "/api/show", {"model": model}),
    )
    now = time.monotonic()
    if (window := _vllm(models, model)) is not None:
        return Discovered(window, "vllm", "vLLM GET /v1/models (max_model_len)", now)
    if (window := _llama_cpp(props)) is not None:
        return Discovered(window, "llama.cpp", "llama.cpp GET /props (default_generation_settings.n_ctx)", now)
    if (window := _ollama_running(ps, model)) is not None:
        return Discovered(window, "ollama", "Ollama GET /api/ps (context_length)", now)
    window, field = _ollama_show(show)
    if window is not None:
        return Discovered(window, "ollama", f"Ollama POST /api/show ({field})", now)
    return Discovered(None, None, "unknown: the server does not say", now)


async def context_window(route: ModelRoute) -> Discovered:
    """What is known of ``route``'s context window: configured, discovered (cached on the route for
    ``TTL``), or learned from a context-length error. Never raises; unknown is ``window=None``."""
    found = route.discovered
    if route.http is not None and (found is None or time.monotonic() - found.at > TTL):
        try:
            fresh = await discover(route.http, route.upstream_model)
        except Exception:  # a server that answers nonsense is a server that does not say
            log.exception("context window discovery failed for model %s", route.name)
            fresh = Discovered(None, None, "unknown: discovery failed", time.monotonic())
        if fresh.window is None and found is not None and found.window is not None:
            fresh = Discovered(found.window, found.server, found.source, fresh.at)  # learned from an error
        found = route.discovered = fresh
    if route.context_window is not None:
        source = "configuration" if found is None or found.window != route.context_window else found.source
        return Discovered(route.context_window, found.server if found else None, source,
                          found.at if found else 0.0)
    return found or Discovered(None, None, "unknown")
