"""The ``web_search`` server tool: the model searches the web through the configured provider.

The model is offered a function ``web_search(query)``. A call becomes a ``web_search_call`` item
whose action is a ``search`` (with ``include: ["web_search_call.action.sources"]``, its sources).
``search_context_size`` decides how many results the model reads (low 3, medium 5, high 10) and
how many of their pages are read live; ``filters.allowed_domains`` is enforced on every result;
``external_web_access: false`` reads no page (the provider's own index and snippets only).
A provider that fails marks the call ``failed`` and the model is told; the response goes on.

With no provider configured, a declared ``web_search`` is accepted (Codex declares it on every
request) and not offered to the model: it cannot call what does not exist.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from rejoinder.tools.citations import Source, Sources
from rejoinder.tools.page_fetch import FetchRefused, fetch_text
from rejoinder.tools.web_provider import (
    ProviderError,
    SearxngProvider,
    WebQuery,
    WebResult,
    WebSearchProvider,
    normalize_domain,
)

log = logging.getLogger(__name__)

TYPES = ("web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11")
FUNCTION_NAME = "web_search"
INCLUDE_SOURCES = "web_search_call.action.sources"
RESULTS_FOR_SIZE = {"low": 3, "medium": 5, "high": 10}
PAGES_FOR_SIZE = {"low": 0, "medium": 1, "high": 3}
PAGE_CHARS = 2000
MAX_QUERY_CHARS = 1000

FUNCTION = {
    "type": "function",
    "function": {
        "name": FUNCTION_NAME,
        "description": "Search the web for current information. Cite what you use with the result's "
                       "marker, like [1].",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to search the web for."}},
            "required": ["query"],
        },
    },
}


@dataclass(frozen=True)
class WebSearchTool:
    """A request's ``web_search`` declaration (its shape was checked against the SDK's type)."""

    allowed_domains: tuple[str, ...] = ()
    context_size: str = "medium"
    user_location: dict[str, Any] | None = None
    live: bool = True  # external_web_access

    @classmethod
    def parse(cls, tool: dict[str, Any]) -> WebSearchTool:
        domains = ((tool.get("filters") or {}).get("allowed_domains")) or []
        return cls(
            allowed_domains=tuple(d for d in dict.fromkeys(normalize_domain(d) for d in domains) if d),
            context_size=tool.get("search_context_size") or "medium",
            user_location=tool.get("user_location"),
            live=tool.get("external_web_access") is not False,
        )


@dataclass
class WebSearchSettings:
    """What the operator configured (``REJOINDER_WEB_SEARCH__*``)."""

    fetch_pages: int = 2
    fetch_max_bytes: int = 2 * 1024 * 1024
    fetch_timeout: float = 10.0
    allow_private_pages: bool = False


@dataclass
class WebSearchOutcome:
    query: str
    results: list[WebResult]
    pages: dict[str, str]  # url -> text read live
    error: str | None = None


def make_provider(config: Any) -> WebSearchProvider | None:
    """The configured provider, or None (web_search is then accepted and not offered)."""
    url = getattr(config, "searxng_url", None)
    if not url:
        return None
    return SearxngProvider(url, timeout=config.timeout, language=config.language, categories=config.categories)


def parse_query(arguments: str) -> str:
    try:
        args = json.loads(arguments or "{}")
    except ValueError:
        raise ValueError("The arguments are not valid JSON; call web_search with {\"query\": \"...\"}.") from None
    query = args.get("query") if isinstance(args, dict) else None
    if not isinstance(query, str) or not query.strip():
        raise ValueError("The query is empty; call web_search with {\"query\": \"...\"}.")
    return query.strip()[:MAX_QUERY_CHARS]


async def run(provider: WebSearchProvider, settings: WebSearchSettings, tool: WebSearchTool,
              query: str) -> WebSearchOutcome:
    """Search, then read the best results' pages if the tool and the operator allow it."""
    try:
        results = await provider.search(WebQuery(query, RESULTS_FOR_SIZE.get(tool.context_size, 5),
                                                 tool.allowed_domains, tool.user_location))
    except ProviderError as exc:
        log.warning("web search via %s failed: %s", provider.name, exc)
        return WebSearchOutcome(query, [], {}, str(exc))
    pages: dict[str, str] = {}
    count = min(PAGES_FOR_SIZE.get(tool.context_size, 1), settings.fetch_pages) if tool.live else 0
    if count and results:
        async with httpx.AsyncClient(timeout=settings.fetch_timeout, follow_redirects=False) as client:
            async def read(url: str) -> str | None:
                try:
                    return await fetch_text(client, url, allow_private=settings.allow_private_pages,
                                            max_bytes=settings.fetch_max_bytes)
                except FetchRefused as exc:
                    log.info("web search did not read %s: %s", url, exc)
                    return None

            texts = await asyncio.gather(*(read(r.url) for r in results[:count]))
        pages = {r.url: t for r, t in zip(results, texts, strict=False) if t}
    return WebSearchOutcome(query, results, pages)


def call_item(item_id: str, query: str) -> dict[str, Any]:
    return {"id": item_id, "type": "web_search_call", "status": "in_progress",
            "action": {"type": "search", "query": query, "queries": [query]}}


def finish_item(item: dict[str, Any], outcome: WebSearchOutcome, include_sources: bool) -> None:
    item["status"] = "failed" if outcome.error else "completed"
    if include_sources:
        item["action"]["sources"] = [{"type": "url", "url": r.url} for r in outcome.results]


def register(outcome: WebSearchOutcome, registry: Sources) -> list[int]:
    return [registry.add(Source("url", url=r.url, title=r.title)) for r in outcome.results]


def stored_sources(item: dict[str, Any]) -> list[Source]:
    """The citable sources of a stored ``web_search_call`` (only kept with the include)."""
    return [Source("url", url=s["url"], title=s["url"]) for s in (item.get("action") or {}).get("sources") or []
            if isinstance(s, dict) and s.get("url")]


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[:cut if cut > limit // 2 else limit] + " ..."


def model_text(outcome: WebSearchOutcome, numbers: list[int], budget_chars: int) -> str:
    if outcome.error:
        return f"The web search failed: {outcome.error} Answer without it, and say the search failed."
    if not outcome.results:
        return f'The web search for "{outcome.query}" found nothing.'
    share = max(200, budget_chars // len(outcome.results))
    lines = [f'Web results for "{outcome.query}". Cite a result by writing its marker, like [{numbers[0]}], '
             "after the sentence that uses it."]
    for n, r in zip(numbers, outcome.results, strict=False):
        text = r.snippet
        if r.url in outcome.pages:
            text = f"{text}\n{outcome.pages[r.url][:PAGE_CHARS]}" if text else outcome.pages[r.url][:PAGE_CHARS]
        lines.append(f"[{n}] {r.title} ({r.url}): {_shorten(text, share)} [{n}]")
    return "\n".join(lines)


def replay_text(item: dict[str, Any], numbers: list[int]) -> str:
    """A stored call as the model reads it on a later turn: its query, and its sources if kept."""
    action = item.get("action") or {}
    query = action.get("query") or "; ".join(action.get("queries") or [])
    if item.get("status") == "failed":
        return f'The web search for "{query}" failed.'
    found = stored_sources(item)
    if not found:
        return f'Searched the web for "{query}". (The results of this earlier search were not kept.)'
    return "\n".join([f'Web results for "{query}":',
                      *(f"[{n}] {s.url} [{n}]" for n, s in zip(numbers, found, strict=False))])
