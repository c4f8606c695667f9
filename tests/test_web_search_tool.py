"""The web_search tool end to end, against a fake SearXNG speaking its JSON API on loopback: the
call item and its events (checked against the SDK's types), url_citation annotations from markers,
include web_search_call.action.sources, allowed_domains, search_context_size, a failing provider,
external_web_access, page reading (loopback pages refused unless configured), no provider."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.conftest import MODEL
from tests.fake_searxng import FakeSearxng, Page
from tests.fake_upstream import ThreadServer, calls, text

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


@pytest.fixture(scope="module")
def searxng() -> Iterator[FakeSearxng]:
    fake = FakeSearxng()
    with ThreadServer(fake.build_app()) as server:
        fake.url = server.url
        yield fake


@pytest.fixture(autouse=True)
def _pages(searxng: FakeSearxng) -> None:
    searxng.reset()
    searxng.pages = [
        Page("https://news.example.com/sky", "Why is the sky blue", "Blue light is scattered most by the air."),
        Page("https://docs.example.org/rayleigh", "Rayleigh scattering", "Short blue wavelengths scatter more."),
        Page("https://example.net/dive", "Sky diving", "Jumping from planes over blue water."),
        Page(f"{searxng.url}/pages/local", "Local notes", "notes kept on this machine",
             body="<html><body><p>The sky is blue because of Rayleigh scattering, says the local page.</p>"
                  "</body></html>"),
    ]


def _client(server: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="test", max_retries=0, timeout=60)


@pytest.fixture
def web_server(make_server: Any, searxng: FakeSearxng) -> Any:
    return make_server(web_search={"searxng_url": searxng.url, "fetch_pages": 0})


def _tool_message(request: dict[str, Any]) -> str:
    return next(m["content"] for m in request["messages"] if m["role"] == "tool")


def test_a_web_search_call_cites_its_sources(web_server: Any, upstream: Any, searxng: FakeSearxng) -> None:
    upstream.queue(calls(("web_search", {"query": "why is the sky blue"})),
                   text("Air scatters blue light most [1]. Short waves scatter more [2]."))
    with _client(web_server).responses.stream(model=MODEL, input="Why is the sky blue?",
                                              tools=[{"type": "web_search"}],
                                              include=["web_search_call.action.sources"]) as stream:
        events = [EVENTS.validate_python(e.model_dump()) for e in stream]
    response = events[-1].response
    Response.model_validate(response.model_dump())
    kinds = [e.type for e in events]
    assert [k for k in kinds if k.startswith("response.web_search_call")] == [
        "response.web_search_call.in_progress", "response.web_search_call.searching",
        "response.web_search_call.completed"]
    call, message = response.output
    assert call.type == "web_search_call" and call.status == "completed"
    assert call.action.type == "search" and call.action.query == "why is the sky blue"
    sources = [s.url for s in call.action.sources]
    assert sources[0] == "https://news.example.com/sky" and len(sources) == 3  # medium: up to five
    part = message.content[0]
    assert part.text == "Air scatters blue light most. Short waves scatter more."
    first, second = part.annotations
    assert (first.type, first.url, first.title) == ("url_citation", "https://news.example.com/sky",
                                                    "Why is the sky blue")
    assert part.text[first.start_index:first.end_index] == "Air scatters blue light most"
    assert second.url == sources[1]
    assert part.text[second.start_index:second.end_index] == "Short waves scatter more"
    assert "[1] Why is the sky blue (https://news.example.com/sky): Blue light is scattered" in \
        _tool_message(upstream.requests[-1])
    assert searxng.requests[-1]["format"] == "json"


def test_sources_are_hidden_without_the_include(web_server: Any, upstream: Any) -> None:
    upstream.queue(calls(("web_search", {"query": "sky blue"})), text("Blue [1]."))
    r = _client(web_server).responses.create(model=MODEL, input="sky?", tools=[{"type": "web_search"}])
    assert r.output[0].action.sources is None
    assert r.output[1].content[0].annotations[0].url == "https://news.example.com/sky"


def test_allowed_domains_and_context_size_shape_the_results(web_server: Any, upstream: Any,
                                                           searxng: FakeSearxng) -> None:
    client = _client(web_server)
    upstream.queue(calls(("web_search", {"query": "sky blue"})), text("ok"))
    r = client.responses.create(model=MODEL, input="sky?", include=["web_search_call.action.sources"],
                                tools=[{"type": "web_search", "filters": {"allowed_domains": ["example.org"]}}])
    assert [s.url for s in r.output[0].action.sources] == ["https://docs.example.org/rayleigh"]
    assert searxng.requests[-1]["q"] == "sky blue site:example.org"
    upstream.queue(calls(("web_search", {"query": "blue"})), text("ok"))
    r = client.responses.create(model=MODEL, input="sky?", include=["web_search_call.action.sources"],
                                tools=[{"type": "web_search_preview", "search_context_size": "low",
                                        "user_location": {"type": "approximate", "country": "DE"}}])
    assert len(r.output[0].action.sources) == 3  # low: three results


def test_a_failing_provider_fails_the_call_and_the_response_completes(web_server: Any, upstream: Any,
                                                                      searxng: FakeSearxng) -> None:
    searxng.fail_status = 502
    upstream.queue(calls(("web_search", {"query": "sky"})), text("The search failed."))
    r = _client(web_server).responses.create(model=MODEL, input="sky?", tools=[{"type": "web_search"}])
    assert r.status == "completed" and r.output[0].status == "failed"
    told = _tool_message(upstream.requests[-1])
    assert "failed" in told and "Traceback" not in told


def test_pages_are_read_live_but_never_on_loopback_unless_configured(make_server: Any, upstream: Any,
                                                                    searxng: FakeSearxng) -> None:
    tool = {"type": "web_search", "search_context_size": "high"}
    for allow, expected in ((False, False), (True, True)):
        server = make_server(web_search={"searxng_url": searxng.url, "allow_private_pages": allow})
        upstream.queue(calls(("web_search", {"query": "local notes"})), text("ok"))
        _client(server).responses.create(model=MODEL, input="sky?", tools=[tool])
        assert ("says the local page" in _tool_message(upstream.requests[-1])) is expected
        upstream.reset()
    server = make_server(web_search={"searxng_url": searxng.url, "allow_private_pages": True})
    upstream.queue(calls(("web_search", {"query": "local notes"})), text("ok"))
    _client(server).responses.create(model=MODEL, input="sky?", tools=[{**tool, "external_web_access": False}])
    assert "says the local page" not in _tool_message(upstream.requests[-1])  # no live fetch


def test_without_a_provider_web_search_is_accepted_and_not_offered(server: Any, upstream: Any) -> None:
    upstream.queue(text("hello"))
    r = _client(server).responses.create(model=MODEL, input="hi",
                                         tools=[{"type": "web_search", "external_web_access": False}])
    assert r.status == "completed" and r.tools[0].type == "web_search"
    assert "tools" not in upstream.requests[-1]
