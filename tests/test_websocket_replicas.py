"""WebSocket mode with replicas on one database (PostgreSQL in CI's PostgreSQL pass): stored
responses continue on any replica's socket, and a replica lost mid-response leaves the client a
socket to reconnect elsewhere, its stored chain intact and the lost response settled ``failed``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import MODEL
from tests.fake_upstream import text
from tests.helpers import check_stream
from tests.procs import ServeProcess, wait_status
from tests.test_websocket import create, recv


@pytest.fixture
def replicas(tmp_path, upstream, shared_storage_url) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    a = ServeProcess(tmp_path, shared_storage_url, upstream.url, "a", replica_id="replica-a", lease_seconds=2)
    b = ServeProcess(tmp_path, shared_storage_url, upstream.url, "b", replica_id="replica-b", lease_seconds=2)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


def _socket(server: ServeProcess):  # type: ignore[no-untyped-def]
    return connect(server.url.replace("http://", "ws://") + "/v1/responses", open_timeout=10)


def test_replica_lost_mid_response_then_the_chain_continues_on_another(replicas, upstream):
    a, b = replicas
    gate = threading.Event()
    upstream.queue(text("first answer"), text("never finished", gate=gate), text("from b"))
    with _socket(a) as ws:
        first = check_stream(create(ws, input="Remember 7."))
        ws.send(json.dumps({"type": "response.create", "model": MODEL, "input": "More.",
                            "previous_response_id": first.id}))
        lost = recv(ws)["response"]["id"]
        a.kill()
        with pytest.raises(ConnectionClosed):
            while True:
                recv(ws)
    gate.set()
    with _socket(b) as ws:  # the client reconnects to another replica and continues the stored chain
        again = check_stream(create(ws, input="What number?", previous_response_id=first.id))
    assert again.output_text == "from b"
    assert [m["content"] for m in upstream.requests[-1]["messages"]] == ["Remember 7.", "first answer", "What number?"]
    assert wait_status(b.client(), lost, ("failed",)).status == "failed"  # settled by its lease
