"""The SearXNG provider against a fake SearXNG speaking its JSON API, and the page fetcher's guard."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from rejoinder.tools.page_fetch import FetchRefused, checked_address, fetch_text, is_public
from rejoinder.tools.web_provider import ProviderError, SearxngProvider, WebQuery, domain_allowed
from tests.fake_searxng import FakeSearxng, Page
from tests.fake_upstream import ThreadServer


@pytest.fixture(scope="module")
def searxng() -> Iterator[FakeSearxng]:
    fake = FakeSearxng()
    with ThreadServer(fake.build_app()) as server:
        fake.url = server.url
        yield fake


@pytest.fixture(autouse=True)
def _reset(searxng: FakeSearxng) -> None:
    searxng.reset()
    searxng.pages = [
        Page("https://docs.example.org/rayleigh", "Rayleigh scattering", "Short blue light scatters the most."),
        Page("https://news.example.com/sky", "Why is the sky blue", "Blue light is scattered by the air."),
        Page("https://example.net/other", "Sky diving", "Jumping from planes over blue water."),
    ]


def _search(provider: SearxngProvider, query: WebQuery) -> list[tuple[str, str]]:
    async def go() -> list[tuple[str, str]]:
        try:
            return [(r.url, r.title) for r in await provider.search(query)]
        finally:
            await provider.aclose()
    return asyncio.run(go())


def test_search_speaks_searxng_json_api(searxng: FakeSearxng) -> None:
    found = _search(SearxngProvider(searxng.url, language="en-US"), WebQuery("why is the sky blue", 2))
    assert found == [("https://news.example.com/sky", "Why is the sky blue"),
                     ("https://docs.example.org/rayleigh", "Rayleigh scattering")]
    request = searxng.requests[-1]
    assert request["format"] == "json" and request["q"] == "why is the sky blue" and request["language"] == "en-US"


def test_allowed_domains_are_enforced_on_results_and_one_is_passed_as_site(searxng: FakeSearxng) -> None:
    found = _search(SearxngProvider(searxng.url), WebQuery("sky blue", 5, ("example.org",)))
    assert [u for u, _ in found] == ["https://docs.example.org/rayleigh"]
    assert searxng.requests[-1]["q"] == "sky blue site:example.org"
    found = _search(SearxngProvider(searxng.url), WebQuery("sky blue", 5, ("example.com", "example.net")))
    assert sorted(u for u, _ in found) == ["https://example.net/other", "https://news.example.com/sky"]


def test_domain_rule_matches_subdomains_only() -> None:
    assert domain_allowed("https://a.b.example.org/x", ("example.org",))
    assert not domain_allowed("https://badexample.org/x", ("example.org",))
    assert domain_allowed("https://x.y/z", ())


@pytest.mark.parametrize(("status", "garbage", "message"), [
    (500, False, "HTTP 500"), (403, False, "JSON format"), (None, True, "other than SearXNG"),
])
def test_provider_failures_are_provider_errors(searxng: FakeSearxng, status: int | None, garbage: bool,
                                               message: str) -> None:
    searxng.fail_status, searxng.garbage = status, garbage
    with pytest.raises(ProviderError, match=message):
        _search(SearxngProvider(searxng.url), WebQuery("sky", 3))


def test_unreachable_provider_is_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="could not be reached"):
        _search(SearxngProvider("http://127.0.0.1:9"), WebQuery("sky", 3))


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.5.4", "169.254.169.254",
                                     "100.64.0.1", "::1", "fe80::1", "::ffff:127.0.0.1", "0.0.0.0", "224.0.0.1"])
def test_private_addresses_are_not_public(address: str) -> None:
    assert not is_public(address)


def test_public_address_is_public() -> None:
    assert is_public("93.184.215.14") and is_public("2606:4700::1111")


def test_fetching_loopback_is_refused_unless_configured(searxng: FakeSearxng) -> None:
    searxng.pages.append(Page(f"{searxng.url}/pages/local", "Local", "local page",
                              body="<html><body><h1>Inside</h1><p>Secret text.</p></body></html>"))

    async def go(allow: bool) -> str:
        async with httpx.AsyncClient() as client:
            return await fetch_text(client, f"{searxng.url}/pages/local", allow_private=allow, max_bytes=10_000)

    with pytest.raises(FetchRefused, match="loopback or private"):
        asyncio.run(go(False))
    assert "Secret text." in asyncio.run(go(True))
    with pytest.raises(FetchRefused, match="loopback or private"):
        asyncio.run(checked_address("http://localhost:1/x", False))
    with pytest.raises(FetchRefused, match="Only http"):
        asyncio.run(checked_address("file:///etc/passwd", True))
