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
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from openai.types import responses as T

from rejoinder.engine.events import Event
from rejoinder.errors import InvalidRequest
from rejoinder.item_types import ItemType, ReplayCall, Replayed, ReplayScope
from rejoinder.tools import search_calls
from rejoinder.tools.citations import CitationStream
from rejoinder.tools.interface import (
    Names,
    Offer,
    Preparation,
    TextFilter,
    ToolGroup,
    ToolKind,
    ToolSetup,
)
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
RESULT_CHARS = 8000
RESULTS_FOR_SIZE = {"low": 3, "medium": 5, "high": 10}
PAGES_FOR_SIZE = {"low": 0, "medium": 1, "high": 3}
PAGE_CHARS = 2000
MAX_QUERY_CHARS = 1000

# A bound the schema states: a small model under a grammar otherwise writes one endless query.
MAX_MODEL_QUERY = 100
FUNCTION = {
    "type": "function",
    "function": {
        "name": FUNCTION_NAME,
        "description": "Search the web for current information. Cite what you use with the result's "
                       "marker, like [1].",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "maxLength": MAX_MODEL_QUERY,
                                     "description": "A few words to search the web for."}},
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
    return search_calls.parse_query(arguments, FUNCTION_NAME, MAX_QUERY_CHARS)


async def search(provider: WebSearchProvider, settings: Any, tool: WebSearchTool, query: str) -> WebSearchOutcome:
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
        async with httpx.AsyncClient(timeout=settings.timeout, follow_redirects=False) as client:
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


def model_text(item: dict[str, Any], numbers: list[int]) -> str:
    """What the model reads for a call, now and on every later turn."""
    action = item.get("action") or {}
    query = action.get("query") or "; ".join(action.get("queries") or [])
    if item.get("status") == "failed":
        return f'The web search for "{query}" failed; answer without it, and say the search failed.'
    results = item.get("results") or []
    if not results:
        return f'The web search for "{query}" found nothing.'
    return search_calls.results_text(
        f'Web results for "{query}".',
        [(n, f"{r.get('title') or r['url']} ({r['url']})", r.get("text") or "")
         for n, r in zip(numbers, results, strict=False)], RESULT_CHARS)


def _replay(item: dict[str, Any], scope: ReplayScope) -> Replayed:
    numbers = search_calls.replay_numbers(scope, len(search_calls.sources_of(item)))
    query = (item.get("action") or {}).get("query") or ""
    return ReplayCall(item["id"], FUNCTION_NAME, json.dumps({"query": query}), model_text(item, numbers))


class WebSearchCall(search_calls.SearchCall):
    item_type = "web_search_call"
    in_progress_event = T.ResponseWebSearchCallInProgressEvent
    group: WebSearchGroup

    def starting_fields(self) -> dict[str, Any]:
        return {"action": {"type": "search", "query": "", "queries": []}}

    async def run(self) -> AsyncIterator[list[Event]]:
        item = self.state.output[self.index]
        try:
            query = parse_query(self.arguments)
        except ValueError as exc:
            outcome = WebSearchOutcome("", [], {}, str(exc))
        else:
            item["action"].update(query=query, queries=[query])
        yield [self._event(T.ResponseWebSearchCallSearchingEvent, "searching")]
        if item["action"]["query"]:
            provider, tool = self.group.kind.provider, self.group.tool
            assert provider is not None and tool is not None
            with self.env.observer.tool_call("web_search", provider.name) as observed:
                outcome = await search(provider, self.group.kind.config, tool, query)
                if outcome.error:
                    observed.failed("provider_error")
        item["action"]["sources"] = [{"type": "url", "url": r.url} for r in outcome.results]
        item["results"] = [{"url": r.url, "title": r.title,
                            "text": f"{r.snippet}\n{outcome.pages[r.url][:PAGE_CHARS]}" if r.url in outcome.pages
                            else r.snippet} for r in outcome.results]
        if outcome.error:
            item["status"] = "failed"
            yield [self.state.item_done(self.index)]
            return
        item["status"] = "completed"
        search_calls.register(self.group.sources, item)
        yield [self._event(T.ResponseWebSearchCallCompletedEvent, "completed"), self.state.item_done(self.index)]


class WebSearchGroup(ToolGroup):
    """The request's declarations of one web search type; offered only with a provider."""

    kind: WebSearchKind

    def __init__(self, kind: WebSearchKind, declarations: list[tuple[str, dict[str, Any]]], names: Names,
                 setup: ToolSetup):
        self.kind = kind
        self.tool = WebSearchTool.parse(declarations[0][1]) if declarations else None
        self.offer: search_calls.SearchOffer | None = None
        self.sources = search_calls.sources(setup.shared)
        if self.tool is None:
            return
        if kind.provider is None:
            _not_offered(kind.type)
        elif FUNCTION_NAME not in names.taken:  # web_search and web_search_preview both declared: one offer
            self.offer = search_calls.SearchOffer(FUNCTION_NAME, FUNCTION, lambda env: WebSearchCall(env, self))
            names.claim(FUNCTION_NAME)

    async def prepare(self, prep: Preparation) -> None:
        search_calls.seed(self.sources, prep.items)

    def offers(self) -> Sequence[Offer]:
        return [self.offer] if self.offer else []

    def choose(self, choice: dict[str, Any], param: str, allowed: bool) -> set[str]:
        if self.tool is None:
            raise InvalidRequest(f"Tool choice '{self.kind.type}' names a tool that is not in 'tools'.",
                                 param=f"{param}.type", code="invalid_value")
        if self.offer is None and not allowed:
            raise InvalidRequest(f"Tool choice '{self.kind.type}' cannot be honoured: no web search provider is "
                                 "configured on this server.", param=f"{param}.type", code="invalid_value")
        return {self.offer.name} if self.offer else set()

    def text_filter(self) -> TextFilter | None:
        return CitationStream(self.sources) if self.offer is not None or self.sources else None


_told_not_offered = False


def _not_offered(kind: str) -> None:
    """Said once per process: the operator learns why the model never searches."""
    global _told_not_offered
    if not _told_not_offered:
        _told_not_offered = True
        log.info("a request declares '%s': no web search provider is configured (REJOINDER_WEB_SEARCH__SEARXNG_URL),"
                 " so the tool is accepted and not offered to the model", kind)


class WebSearchKind(ToolKind):
    """One of the web search tool types; every one shares the server's provider."""

    on_server = True
    item_types = (ItemType("web_search_call", "ws", _replay),)

    def __init__(self, type_: str, provider: WebSearchProvider | None = None, config: Any = None):
        self.type = type_  # type: ignore[misc]
        self.choice_types = (type_,)  # type: ignore[misc]
        self.provider = provider
        self.config = config

    def group(self, declarations: list[tuple[str, dict[str, Any]]], names: Names, setup: ToolSetup) -> ToolGroup:
        return WebSearchGroup(self, declarations, names, setup)


def kinds(provider: WebSearchProvider | None = None, config: Any = None) -> list[WebSearchKind]:
    return [WebSearchKind(t, provider, config) for t in TYPES]
