"""``GET /metrics``: the families the issue lists, read with prometheus-client's own parser."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rejoinder.config import Settings
from rejoinder.http.app import create_app
from rejoinder.observability.metrics import FAMILIES
from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, ThreadServer, Turn, calls, text
from tests.helpers import check_stream, sse_events

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    r = httpx.get(url + "/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert r.headers["x-request-id"].startswith("req_")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_families_count_what_happened(server: ThreadServer, upstream: FakeUpstream, mcp_server: str) -> None:
    mcp = {"type": "mcp", "server_label": "lab", "server_url": mcp_server, "require_approval": "never"}
    fn = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}
    upstream.queue(text("plain answer"), text("streamed answer"),
                   calls(("get_user_id", {"username": "bob"})), text("bob is user_67890"),
                   calls(("lookup", {})), Turn(status=500))
    post = lambda body: httpx.post(server.url + "/v1/responses", json={"model": MODEL, **body}, timeout=30)  # noqa: E731
    assert post({"input": "one"}).json()["status"] == "completed"
    check_stream(sse_events(server.url, {"model": MODEL, "input": "two"}))
    assert post({"input": "bob?", "tools": [mcp]}).json()["status"] == "completed"
    assert post({"input": "look it up", "tools": [fn]}).json()["status"] == "completed"
    assert post({"input": "fails"}).json()["status"] == "failed"
    missing = httpx.get(server.url + "/v1/responses/resp_0123456789abcdef", timeout=10)
    assert missing.status_code == 404
    assert httpx.get(server.url + "/v1/nowhere/resp_abc", timeout=10).status_code == 404

    s = scrape(server.url)
    families = {name for name, _ in s}
    for name, kind, _labels, _meaning in FAMILIES:  # every family the README lists is exported
        assert name + ("_count" if kind == "histogram" else "") in families, name
    assert value(s, "rejoinder_responses_total", model=MODEL, status="completed") == 4
    assert value(s, "rejoinder_responses_total", model=MODEL, status="failed") == 1
    calls_made = len(upstream.requests)
    assert calls_made == 6
    assert value(s, "rejoinder_backend_request_duration_seconds_count", model=MODEL) == calls_made
    assert value(s, "rejoinder_time_to_first_token_seconds_count", model=MODEL) == 4  # the failed one had none
    # The fake upstream reports 10 prompt and 5 completion tokens per successful call.
    assert value(s, "rejoinder_tokens_total", model=MODEL, type="input") == 10 * (calls_made - 1)
    assert value(s, "rejoinder_tokens_total", model=MODEL, type="output") == 5 * (calls_made - 1)
    assert value(s, "rejoinder_tool_calls_total", kind="mcp") == 1
    assert value(s, "rejoinder_tool_calls_total", kind="function") == 1
    assert value(s, "rejoinder_active_streams") == 0
    assert value(s, "rejoinder_background_queue_depth") == 0
    assert value(s, "rejoinder_lease_takeovers_total") == 0
    http = "rejoinder_http_request_duration_seconds_count"
    assert value(s, http, method="POST", route="/v1/responses", status="200") == 5
    assert value(s, http, method="GET", route="/v1/responses/{response_id}", status="404") == 1
    assert value(s, http, method="GET", route="unmatched", status="404") == 1
    # The scrape before this one is counted too; no label anywhere holds an id.
    for (_name, labels) in s:
        for _key, label in labels:
            assert not any(label.startswith(p) for p in ("resp_", "msg_", "conv_", "call_", "req_")), labels
            assert "/nowhere" not in label


def test_active_streams_counts_open_streams(server: ThreadServer, upstream: FakeUpstream) -> None:
    gate = threading.Event()
    upstream.queue(text("held", gate=gate))
    done: list[Any] = []
    reader = threading.Thread(target=lambda: done.append(sse_events(server.url, {"model": MODEL, "input": "x"})))
    reader.start()
    try:
        for _ in range(200):  # until the stream is open (its first events are sent before the model answers)
            if value(scrape(server.url), "rejoinder_active_streams") == 1:
                break
            threading.Event().wait(0.02)
        assert value(scrape(server.url), "rejoinder_active_streams") == 1
    finally:
        gate.set()
        reader.join(30)
    check_stream(done[0])
    s = scrape(server.url)
    assert value(s, "rejoinder_active_streams") == 0
    assert value(s, "rejoinder_http_request_duration_seconds_count", method="POST", route="/v1/responses",
                 status="200") == 1


def test_access_with_keys(make_server: Callable[..., ThreadServer]) -> None:
    keys = {"sk-alice-0123456789": "alice"}
    loopback = make_server(api_keys=keys)
    scrape(loopback.url)  # loopback: no key needed
    assert httpx.get(loopback.url + "/v1/models").status_code == 401  # the rest still needs one

    keyed = make_server(api_keys=keys, metrics_access="key")
    denied = httpx.get(keyed.url + "/metrics")
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == "invalid_api_key"
    assert denied.headers["x-request-id"].startswith("req_")
    scrape(keyed.url, {"Authorization": "Bearer sk-alice-0123456789"})

    off = make_server(api_keys=keys, metrics_access="off")
    assert httpx.get(off.url + "/metrics").status_code == 404


@pytest.mark.parametrize(("access", "key", "status"), [
    ("loopback", None, 401), ("loopback", "sk-alice-0123456789", 200), ("open", None, 200), ("key", None, 401),
])
def test_remote_scraper(tmp_path: Any, access: str, key: str | None, status: int) -> None:
    """A scraper on another host (the peer address given to the app as the ASGI server would)."""
    settings = Settings(data_dir=tmp_path, embedded={"enabled": "off"}, api_keys={"sk-alice-0123456789": "alice"},
                        metrics_access=access)
    transport = httpx.ASGITransport(app=create_app(settings), client=("203.0.113.7", 40000))
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://rejoinder") as client:
            return await client.get("/metrics", headers=headers)

    assert asyncio.run(get()).status_code == status


def test_docs_list_every_family() -> None:
    """The README's Grafana list and docs/operations.md name every exported family."""
    root = Path(__file__).resolve().parent.parent
    for doc in (root / "README.md", root / "docs" / "operations.md"):
        listed = set(re.findall(r"^\| `(rejoinder_[a-z_]+)` \|", doc.read_text(), re.MULTILINE))
        assert listed == {name for name, *_ in FAMILIES}, doc
