"""The response head leaves in the same write as the body (``http/protocol.py``)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx

from rejoinder.http.protocol import HeadWithBody, HttpProtocol
from tests.fake_upstream import ThreadServer


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_head_and_body_go_out_in_one_write() -> None:
    async def run() -> None:
        inner = _Transport()
        transport = HeadWithBody(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(HEAD)
        assert inner.writes == []
        transport.write(b"{}")
        assert inner.writes == [HEAD + b"{}"]
        transport.write(b"more")  # not a head: at once
        assert inner.writes[-1] == b"more"
        await asyncio.sleep(0)
        assert len(inner.writes) == 2  # the queued flush finds nothing held
        assert transport.get_extra_info("peername") == "info:peername"

    asyncio.run(run())


def test_a_head_alone_leaves_on_the_next_loop_pass_or_at_close() -> None:
    async def run() -> None:
        inner = _Transport()
        transport = HeadWithBody(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await asyncio.sleep(0)
        assert inner.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        transport.write(HEAD)
        transport.close()  # a head written just before closing still goes out first
        assert inner.writes[-1] == HEAD and inner.closed
        await asyncio.sleep(0)  # and the queued flush does not write to the closed transport

    asyncio.run(run())


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":  # the head first, the body a while later
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"late", "more_body": True})
        await send({"type": "http.response.body", "body": b" end"})
        return
    await send({"type": "http.response.start", "status": 201, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


def test_uvicorn_serves_through_it() -> None:
    with ThreadServer(_app, http=HttpProtocol) as server, httpx.Client(base_url=server.url) as client:
        for _ in range(3):  # on one keep-alive connection
            r = client.get("/")
            assert (r.status_code, r.text) == (201, "hello")
        with client.stream("GET", "/slow") as r:
            assert r.status_code == 200  # a head and a body written apart
            assert r.read() == b"late end"
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(b"NOT HTTP\r\n\r\n")  # uvicorn's own 400 (written, then the connection closed)
            assert raw.recv(1024).startswith(b"HTTP/1.1 400")
