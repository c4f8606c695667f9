"""Web search providers: who answers a ``web_search`` call. SearXNG first.

A provider takes a ``WebQuery`` and returns ``WebResult``s, or raises ``ProviderError`` with a
message fit for the model and the log (never a stack trace). The tool module does the rest
(domain filtering, numbering, citations), so a provider stays a thin client of one service.

SearXNG: its JSON API (``GET {url}/search?q=...&format=json``; the instance must enable the json
format in its ``settings.yml``, else it answers 403). It takes a language, not a location: a
``user_location`` reaches it only as the configured ``language``; one allowed domain is passed on
as ``site:`` syntax (engines that know it narrow their results), and every allowed domain is
enforced on the results here anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx


class ProviderError(Exception):
    """The provider could not answer; ``str()`` is safe to show the model and the client."""


@dataclass(frozen=True)
class WebQuery:
    query: str
    max_results: int
    allowed_domains: tuple[str, ...] = ()
    user_location: dict[str, Any] | None = None


@dataclass(frozen=True)
class WebResult:
    url: str
    title: str
    snippet: str
    extra: dict[str, Any] = field(default_factory=dict)


class WebSearchProvider(Protocol):
    name: str

    async def search(self, query: WebQuery) -> list[WebResult]: ...

    async def aclose(self) -> None: ...


def domain_allowed(url: str, allowed: tuple[str, ...]) -> bool:
    """``allowed`` empty, or the URL's host is one of them or a subdomain of one (OpenAI's rule)."""
    if not allowed:
        return True
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in allowed)


def normalize_domain(value: str) -> str:
    """``https://Example.com/x`` or ``example.com`` -> ``example.com``."""
    value = value.strip().lower()
    host = urlsplit(value).hostname if "://" in value else value.split("/")[0]
    return (host or "").rstrip(".")


class SearxngProvider:
    name = "searxng"

    def __init__(self, base_url: str, timeout: float = 10.0, language: str | None = None,
                 categories: str | None = None, client: httpx.AsyncClient | None = None):
        self.base_url = base_url.rstrip("/")
        self.language = language
        self.categories = categories
        self._client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=True,
                                                   headers={"Accept": "application/json"})

    async def search(self, query: WebQuery) -> list[WebResult]:
        q = query.query
        if len(query.allowed_domains) == 1:
            q = f"{q} site:{query.allowed_domains[0]}"
        params: dict[str, str] = {"q": q, "format": "json", "pageno": "1"}
        if self.language:
            params["language"] = self.language
        if self.categories:
            params["categories"] = self.categories
        try:
            reply = await self._client.get(f"{self.base_url}/search", params=params)
        except httpx.TimeoutException:
            raise ProviderError("The web search service did not answer in time.") from None
        except httpx.HTTPError:
            raise ProviderError("The web search service could not be reached.") from None
        if reply.status_code == 403:
            raise ProviderError("The web search service refused the JSON format (enable it in SearXNG's settings).")
        if reply.status_code != 200:
            raise ProviderError(f"The web search service answered HTTP {reply.status_code}.")
        try:
            body = reply.json()
            rows = body.get("results") or []
        except (ValueError, AttributeError):
            raise ProviderError("The web search service answered something other than SearXNG's JSON.") from None
        results: list[WebResult] = []
        seen: set[str] = set()
        for row in rows:
            if not isinstance(row, dict):
                continue
            url = row.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")) or url in seen:
                continue
            if not domain_allowed(url, query.allowed_domains):
                continue
            seen.add(url)
            results.append(WebResult(url=url, title=str(row.get("title") or url),
                                     snippet=str(row.get("content") or "").strip(),
                                     extra={"engine": row.get("engine"), "published": row.get("publishedDate")}))
            if len(results) >= query.max_results:
                break
        return results

    async def aclose(self) -> None:
        await self._client.aclose()
