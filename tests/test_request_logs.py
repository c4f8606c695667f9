"""``x-request-id`` on every response, and the access lines that carry it (JSON and text)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, ThreadServer, Turn, text
from tests.procs import ServeProcess

REQUEST_ID = re.compile(r"^req_[0-9a-f]{32}$")
KEY = "sk-team-a-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


def test_every_response_has_a_request_id(make_server: Callable[..., ThreadServer], upstream: FakeUpstream) -> None:
    server = make_server(api_keys={KEY: "team-a"}, max_body_bytes=4096)
    url = server.url
    seen: list[str] = []

    def rid(response: httpx.Response, status: int) -> None:
        assert response.status_code == status, response.text
        value = response.headers.get("x-request-id", "")
        assert REQUEST_ID.match(value), (response.request.url, response.headers)
        seen.append(value)

    rid(httpx.get(url + "/health"), 200)
    rid(httpx.get(url + "/v1/models"), 401)  # no key
    rid(httpx.get(url + "/v1/models", headers={"Authorization": "Bearer wrong-key-123456"}), 401)
    rid(httpx.get(url + "/v1/models", headers=AUTH), 200)
    rid(httpx.post(url + "/v1/responses", headers=AUTH, json={"model": MODEL, "input": "hi"}, timeout=30), 200)
    rid(httpx.post(url + "/v1/responses", headers=AUTH, json={"model": MODEL}), 400)
    rid(httpx.post(url + "/v1/responses", headers=AUTH, content=b"{not json"), 400)
    rid(httpx.post(url + "/v1/responses", headers=AUTH, json={"model": MODEL, "input": "x" * 8192}), 413)
    rid(httpx.get(url + "/v1/responses/resp_missing", headers=AUTH), 404)
    rid(httpx.get(url + "/v1/no/such/route", headers=AUTH), 404)
    rid(httpx.get(url + "/metrics"), 200)
    rid(httpx.get(url + "/ui/"), 200)
    rid(httpx.get(url + "/ui"), 308)
    with httpx.stream("POST", url + "/v1/responses", headers=AUTH, timeout=30,
                      json={"model": MODEL, "input": "stream", "stream": True}) as stream:
        rid(stream, 200)
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert b"response.completed" in stream.read()
    assert len(set(seen)) == len(seen)  # unique per request


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def test_json_log_lines(tmp_path: Path, upstream: FakeUpstream) -> None:
    """REJOINDER_LOG_FORMAT=json: every line the process writes is one JSON object (llama.cpp's own
    messages included: the embedded model is served too), and each access line names the request as
    its client saw it, a stream's whole duration included."""
    proc = ServeProcess(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", upstream.url, "json",
                        env={"REJOINDER_LOG_FORMAT": "json"}, log_level="info", api_keys={KEY: "team-a"},
                        embedded={"enabled": "on", "n_ctx": 512})
    upstream.queue(text("plain"), Turn(text="one two three four five", delay=0.1))
    proc.start()
    try:
        plain = httpx.post(proc.url + "/v1/responses", headers={**AUTH, "x-client-request-id": "client-1"},
                           json={"model": MODEL, "input": "hi"}, timeout=30)
        with httpx.stream("POST", proc.url + "/v1/responses", headers={**AUTH, "X-Client-Request-Id": "client-2"},
                          json={"model": MODEL, "input": "slow", "stream": True}, timeout=30) as streamed:
            streamed.read()
        denied = httpx.get(proc.url + "/v1/models", headers={"Authorization": "Bearer sk-not-a-key-000000"})
        missing = httpx.get(proc.url + "/v1/responses/resp_nope", headers=AUTH)
    finally:
        proc.stop()
    lines = _lines(proc.log_path)
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert all(isinstance(r, dict) and {"time", "level", "logger", "message"} <= set(r) for r in records)
    assert KEY not in proc.log_path.read_text() and "sk-not-a-key-000000" not in proc.log_path.read_text()
    access = {r["request_id"]: r for r in records if r["logger"] == "rejoinder.access"}

    line = access[plain.headers["x-request-id"]]
    assert (line["method"], line["path"], line["status"]) == ("POST", "/v1/responses", 200)
    assert (line["client_request_id"], line["model"], line["principal"]) == ("client-1", MODEL, "team-a")
    assert line["duration_ms"] > 0

    line = access[streamed.headers["x-request-id"]]
    assert (line["status"], line["client_request_id"], line["model"], line["principal"]) == (
        200, "client-2", MODEL, "team-a")
    # Five words each sent 0.1 s apart (plus the usage and finish chunks): the line spans the stream.
    assert line["duration_ms"] >= 500

    line = access[denied.headers["x-request-id"]]
    assert (line["path"], line["status"], line.get("principal")) == ("/v1/models", 401, None)
    line = access[missing.headers["x-request-id"]]
    assert (line["status"], line["principal"]) == (404, "team-a")
    assert any(r["logger"].startswith("uvicorn") for r in records)  # the server's own lines are JSON too
    assert any(r["logger"] == "llama_cpp" for r in records)  # and so are llama.cpp's


def test_text_log_lines_by_default(tmp_path: Path, upstream: FakeUpstream) -> None:
    proc = ServeProcess(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", upstream.url, "text", log_level="info")
    proc.start()
    try:
        r = httpx.post(proc.url + "/v1/responses", headers={"x-client-request-id": "abc-123"},
                       json={"model": MODEL, "input": "hi"}, timeout=30)
    finally:
        proc.stop()
    access = [line for line in _lines(proc.log_path) if r.headers["x-request-id"] in line]
    assert len(access) == 1
    line: Any = access[0]
    assert not line.startswith("{")
    assert '"POST /v1/responses" 200' in line and "client_request_id=abc-123" in line and f"model={MODEL}" in line


def test_the_engines_lines_carry_the_request_id_passed_to_them(
    server: ThreadServer, upstream: FakeUpstream, caplog: Any
) -> None:
    """No task-local state: the id reaches the engine in the request's context and the run's plan."""
    upstream.queue(Turn(tool_calls=[("", {"x": 1})]), text("fine"))  # a call the model never names
    with caplog.at_level("WARNING", logger="rejoinder.engine"):
        r = httpx.post(server.url + "/v1/responses", json={"model": MODEL, "input": "hi"}, timeout=30)
    assert r.status_code == 200, r.text
    dropped = [rec for rec in caplog.records if "never named" in rec.getMessage()]
    assert [rec.request_id for rec in dropped] == [r.headers["x-request-id"]]  # type: ignore[attr-defined]
