"""uvicorn's HTTP protocol, with a response's head sent in the same write as its first body bytes.

uvicorn writes the status line and headers the moment the app sends ``http.response.start``, and
the body in a write of its own. Each write to the client's socket wakes the client, and on small
VMs that wake-up costs more than the write: one write instead of two took 0.016 ms (non-stream)
and 0.030 ms (stream) off a stored turn (``bench/compare.py``, four servers a side). The head is
held until the connection's next write, which follows it in the same pass of the event loop for a
JSON reply and for an event stream's first batch; a callback queued with the hold sends it alone if
nothing follows (a ``100 Continue``, or a body that is not ready yet).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD = b"HTTP/1.1 "  # how every head uvicorn writes begins


class HeadWithBody:
    """A transport that holds a written response head until the next write (or the next loop pass)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif data.startswith(_HEAD):
            self._held = data
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's own
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over ``HeadWithBody``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeadWithBody(transport, self.loop))  # type: ignore[arg-type]
