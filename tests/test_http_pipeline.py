"""One pipeline for every route: the same limits, auth and errors, ``POST /v1/responses`` included."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rejoinder.request_context import MAX_BODY_BYTES
from tests.conftest import MODEL
from tests.procs import query

SRC = Path(__file__).resolve().parent.parent / "src" / "rejoinder"


def _err(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/v1/responses/compact"),  # the compaction endpoint takes POST only
    ("POST", "/v1/responses/resp_123"),
    ("DELETE", "/v1/conversations"),
    ("PUT", "/v1/responses"),
    ("PATCH", "/v1/conversations/conv_1"),
    ("GET", "/v1/nothing-here"),
    ("GET", "/v2/responses"),
])
def test_unknown_paths_and_methods_are_openai_404s(server, method, path):
    e = _err(httpx.request(method, server.url + path, json={}), 404)
    assert e["message"] == f"Invalid URL ({method} {path})" and e["type"] == "invalid_request_error"


def _chunked(data: bytes, size: int = 4096) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


@pytest.mark.parametrize("chunked", [False, True])
def test_every_route_has_the_same_body_limit_and_stores_nothing_from_a_refused_body(
        make_server, shared_storage_url, chunked):
    server = make_server(max_body_bytes=4096, storage_url=shared_storage_url)
    big = json.dumps({"items": [{"role": "user", "content": "x" * 5000}]}).encode()
    conv = httpx.post(server.url + "/v1/conversations", json={}).json()["id"]
    rid = httpx.post(server.url + "/v1/responses", json={"model": MODEL, "input": "hi"}).json()["id"]
    for path in ("/v1/conversations", f"/v1/conversations/{conv}/items", f"/v1/conversations/{conv}",
                 "/v1/responses", f"/v1/responses/{rid}/cancel"):
        content = _chunked(big) if chunked else big
        e = _err(httpx.post(server.url + path, content=content, headers={"content-type": "application/json"}), 413)
        assert e["code"] == "request_too_large"
    assert query(shared_storage_url, "select count(*) from conversations")[0][0] == 1
    assert query(shared_storage_url, "select count(*) from conversation_items")[0][0] == 0
    assert query(shared_storage_url, "select count(*) from responses")[0][0] == 1


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(server):
    """70 MB to POST /v1/conversations was accepted: the cap existed on POST /v1/responses only."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"POST /v1/conversations HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n" % (70 * 1024 * 1024))
        head = raw.recv(65536)
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b'"request_too_large"' in head and MAX_BODY_BYTES == 64 * 1024 * 1024


def test_json_depth_is_one_limit_for_every_json_route(server):
    deep: list = ["x"]
    for _ in range(100):
        deep = [deep]
    conv = httpx.post(server.url + "/v1/conversations", json={}).json()["id"]
    for path in ("/v1/responses", f"/v1/conversations/{conv}", f"/v1/conversations/{conv}/items"):
        assert "64 levels" in _err(httpx.post(server.url + path, json={"metadata": deep}), 400)["message"]


def test_create_has_the_error_handling_of_every_route(server, monkeypatch, caplog):
    """An unexpected error in POST /v1/responses: OpenAI's 500, logged once, the connection kept."""
    from rejoinder.http import routes_create

    def broken(_body):
        raise RuntimeError("a bug")

    monkeypatch.setattr(routes_create, "validate_create", broken)
    caplog.set_level(logging.ERROR)
    with httpx.Client(base_url=server.url) as http:
        failed = http.post("/v1/responses", json={"model": MODEL, "input": "hi"})
        e = _err(failed, 500)
        assert e["type"] == "server_error" and "a bug" not in e["message"]
        monkeypatch.undo()
        ok = http.post("/v1/responses", json={"model": MODEL, "input": "hi"})
        assert ok.status_code == 200
        ports = [r.extensions["network_stream"].get_extra_info("client_addr")[1] for r in (failed, ok)]
        assert ports[0] == ports[1]
    assert len([r for r in caplog.records if r.exc_info]) == 1


def test_the_key_is_checked_on_every_route_but_health(make_server):
    server = make_server(api_keys={"sk-1": "alice"})
    for method, path in (("POST", "/v1/responses"), ("GET", "/v1/models"), ("POST", "/v1/conversations"),
                         ("GET", "/v1/nothing-here")):
        assert _err(httpx.request(method, server.url + path, json={}), 401)["code"] == "invalid_api_key"
    assert httpx.get(server.url + "/health").status_code == 200
    ok = httpx.post(server.url + "/v1/responses", json={"model": MODEL, "input": "hi"},
                    headers={"authorization": "Bearer sk-1"})
    assert ok.status_code == 200


def test_no_request_state_in_context_variables_and_no_private_server_classes():
    """The request's state travels as arguments (RequestContext, Admission) through the layers that
    serve it; a WebSocket connection makes many responses in one task, where task-local state leaks."""
    for path in SRC.rglob("*.py"):  # every layer, logging included
        assert "ContextVar" not in path.read_text(), path
    for path in SRC.rglob("*.py"):
        assert "uvicorn.protocols" not in path.read_text(), path
