"""``GET /v1/responses`` upgraded to a WebSocket: many responses over one connection.

The gate authenticated the upgrade and made the connection's request context (http/gate.py): no
``openai-beta`` header is needed, and Codex's ``responses_websockets=...`` is accepted like any
other header. This module moves bytes: it reads client messages (each within
``websocket.max_message_bytes``) into the connection's :class:`SocketSession` and writes what it
produces through a bounded outbox, so a client that stops reading slows its responses down (the
outbox full, the run waits) instead of growing the server's memory; one that stays stuck for
``send_timeout`` is disconnected (its running responses still finish and are stored). A socket
with nothing running and nothing received for ``idle_timeout`` is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from rejoinder.config import WebSocketConfig
from rejoinder.errors import InvalidRequest
from rejoinder.http.gate import CONTEXT_KEY
from rejoinder.http.ws_frames import error_message
from rejoinder.http.ws_session import SocketSession
from rejoinder.request_context import RequestContext

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN = 1013  # the client did not read its events within send_timeout


class SlowReader(Exception):
    """The outbox stayed full for ``send_timeout``: the client is not reading."""


class Outbox:
    """Messages waiting for the socket, bounded in bytes: ``put`` waits while it is full.

    One message always fits in an empty outbox, however large, so a big event never blocks for
    ever; beyond that a writer waits for the reader to take messages out."""

    def __init__(self, max_bytes: int, timeout: float):
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._messages: deque[str] = deque()
        self._size = 0
        self._space = asyncio.Event()
        self._ready = asyncio.Event()
        self.closed = False

    async def put(self, message: str) -> None:
        while self._size and self._size + len(message) > self.max_bytes:
            if self.closed:
                raise SlowReader()
            self._space.clear()
            try:
                await asyncio.wait_for(self._space.wait(), self.timeout)
            except TimeoutError:
                self.close()
                raise SlowReader() from None
        if self.closed:
            raise SlowReader()
        self._messages.append(message)
        self._size += len(message)
        self._ready.set()

    async def get(self) -> str | None:
        """The next message; None once closed."""
        while not self._messages:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        message = self._messages.popleft()
        self._size -= len(message)
        self._space.set()
        return message

    def close(self) -> None:
        self.closed = True
        self._ready.set()
        self._space.set()


async def _write(socket: WebSocket, outbox: Outbox) -> None:
    while (message := await outbox.get()) is not None:
        await socket.send_text(message)


async def responses_socket(socket: WebSocket) -> None:
    services = socket.app.state.services
    config: WebSocketConfig = services.settings.websocket
    context: RequestContext = socket.scope[CONTEXT_KEY]
    await socket.accept()
    outbox = Outbox(config.send_buffer_bytes, config.send_timeout)
    session = SocketSession(services.responses, context, config, outbox.put)
    writer = asyncio.ensure_future(_write(socket, outbox))
    receiving: asyncio.Future[Message] | None = None
    code = CLOSE_NORMAL
    try:
        while True:
            if receiving is None:
                receiving = asyncio.ensure_future(socket.receive())
            done, _ = await asyncio.wait((receiving, writer), timeout=config.idle_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if writer in done:  # a slow reader (the outbox gave up on it), or the client is gone
                code = CLOSE_TRY_AGAIN if outbox.closed else 0
                break
            if receiving not in done:
                if session.busy:
                    continue
                code = CLOSE_GOING_AWAY  # idle
                break
            message, receiving = receiving.result(), None
            if message["type"] == "websocket.disconnect":
                code = 0
                break
            raw = message["text"].encode() if message.get("text") is not None else message.get("bytes")
            if not raw:
                continue
            if len(raw) > config.max_message_bytes:
                await outbox.put(error_message(InvalidRequest(
                    f"The message is larger than {config.max_message_bytes} bytes.", param=None,
                    code="message_too_large")))
                continue
            await session.receive(raw)
    except SlowReader:
        code = CLOSE_TRY_AGAIN
    except WebSocketDisconnect:
        code = 0
    finally:
        if receiving is not None:
            receiving.cancel()
        await session.close()
        outbox.close()
        with contextlib.suppress(Exception):
            await writer
        if code:
            with contextlib.suppress(Exception):
                await socket.close(code)
