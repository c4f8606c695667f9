"""OpenTelemetry: ``rejoinder serve`` configured only by the standard OTEL_* variables, exporting to a
fake OTLP/HTTP collector on loopback whose protobuf is decoded with opentelemetry-proto."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import MODEL
from tests.fake_collector import FakeCollector, Span
from tests.fake_upstream import FakeUpstream, ThreadServer, calls, text
from tests.procs import ServeProcess

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def collector() -> Iterator[FakeCollector]:
    fake = FakeCollector()
    with ThreadServer(fake.app) as server:
        fake.url = server.url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture
def traced(tmp_path: Path, upstream: FakeUpstream, collector: FakeCollector) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", upstream.url, "traced", env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,  # type: ignore[attr-defined]
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "rejoinder-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    })
    proc.start()
    yield proc
    proc.stop()


def _of_trace(spans: list[Span], trace_id: str) -> list[Span]:
    return [s for s in spans if s.trace_id == trace_id]


def test_a_trace_per_request(traced: ServeProcess, upstream: FakeUpstream, collector: FakeCollector,
                             mcp_server: str) -> None:
    upstream.queue(calls(("get_user_id", {"username": "bob"})), text("bob is user_67890"))
    mcp = {"type": "mcp", "server_label": "lab", "server_url": mcp_server, "require_approval": "never"}
    r = httpx.post(traced.url + "/v1/responses", timeout=30,
                   headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
                   json={"model": MODEL, "input": "bob?", "tools": [mcp]})
    assert r.status_code == 200 and r.json()["status"] == "completed"

    def complete(spans: list[Span]) -> bool:
        names = [s.name for s in _of_trace(spans, TRACE_ID)]
        return ("POST /v1/responses" in names and names.count(f"chat {MODEL}") == 2
                and "execute_tool get_user_id" in names)

    spans = _of_trace(collector.wait_for(complete), TRACE_ID)
    server = next(s for s in spans if s.kind == "SPAN_KIND_SERVER")
    # The incoming W3C traceparent is continued: same trace, its span is the parent.
    assert (server.name, server.parent_span_id) == ("POST /v1/responses", PARENT_ID)
    assert server.attributes["http.route"] == "/v1/responses"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["rejoinder.request_id"] == r.headers["x-request-id"]
    assert server.resource["service.name"] == "rejoinder-under-test"

    chats = [s for s in spans if s.name == f"chat {MODEL}"]
    assert len(chats) == 2
    for chat in chats:
        assert chat.kind == "SPAN_KIND_CLIENT"
        assert chat.parent_span_id == server.span_id
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.request.model"] == MODEL
        assert (chat.attributes["gen_ai.usage.input_tokens"], chat.attributes["gen_ai.usage.output_tokens"]) == (10, 5)
        assert server.start <= chat.start <= chat.end <= server.end

    tool = next(s for s in spans if s.name == "execute_tool get_user_id")
    assert tool.parent_span_id == server.span_id
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "get_user_id"
    first, second = sorted(chats, key=lambda s: s.start)
    assert first.end <= tool.start <= tool.end <= second.start  # the tool ran between the two model calls
    # The MCP SDK's own span for the call nests inside the tool's span; its listing, under the request.
    mcp_call = next(s for s in spans if s.name == "MCP send tools/call get_user_id")
    assert mcp_call.parent_span_id == tool.span_id
    assert next(s for s in spans if s.name == "MCP send tools/list").parent_span_id == server.span_id


def test_new_trace_without_traceparent_and_failures_marked(traced: ServeProcess, upstream: FakeUpstream,
                                                          collector: FakeCollector) -> None:
    from tests.fake_upstream import Turn

    upstream.queue(Turn(status=500))
    r = httpx.post(traced.url + "/v1/responses", json={"model": MODEL, "input": "fails"}, timeout=30)
    assert r.json()["status"] == "failed"
    request_id = r.headers["x-request-id"]

    def arrived(spans: list[Span]) -> bool:
        return any(s.attributes.get("rejoinder.request_id") == request_id for s in spans) and any(
            s.name == f"chat {MODEL}" and s.status_code == 2 for s in spans)

    spans = collector.wait_for(arrived)
    server = next(s for s in spans if s.attributes.get("rejoinder.request_id") == request_id)
    assert server.parent_span_id == "" and server.trace_id != TRACE_ID  # a trace of its own
    chat = next(s for s in _of_trace(spans, server.trace_id) if s.name == f"chat {MODEL}")
    assert chat.status_code == 2  # STATUS_CODE_ERROR
    assert chat.attributes["error.type"] == "server_error"


def test_no_sdk_when_not_configured(tmp_path: Path, upstream: FakeUpstream) -> None:
    """Without OTEL_* the SDK is never imported, whatever the server serves."""
    script = f"""
import sys, httpx
from rejoinder.config import Settings
from rejoinder.http.app import create_app
from tests.fake_upstream import ThreadServer
settings = Settings(data_dir={str(tmp_path)!r}, embedded={{"enabled": "off"}},
                    models={{"m": {{"base_url": {upstream.url + "/v1"!r}}}}})
with ThreadServer(create_app(settings)) as server:
    r = httpx.post(server.url + "/v1/responses", json={{"model": "m", "input": "hi"}}, timeout=30)
    assert r.json()["status"] == "completed", r.text
    with httpx.stream("POST", server.url + "/v1/responses", json={{"model": "m", "input": "hi", "stream": True}}) as s:
        s.read()
    httpx.get(server.url + "/metrics")
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk") or m.startswith("opentelemetry.exporter"))
print("LOADED", loaded)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "REJOINDER_"))}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout, out.stdout
