"""Any OpenAI-compatible ``/v1/chat/completions`` endpoint: OpenAI, vLLM, Ollama, llama.cpp server.

The call is one aiohttp request on a pooled keep-alive connection. Its SSE body is read in blocks
(whatever arrived together is one batch) and each chunk is validated by pydantic-core into the
typed dicts of ``chunk.py``. The ``openai`` client was measured in the way: its
request building, its httpx2 layer over the same aiohttp transport, and its line decoding cost
~0.9 ms of server CPU a turn (bench/bench_core.py: 4.5 -> 3.5 ms), more than Rejoinder's own work
on a short answer now is. What the client gave besides (auth header, base URL, status errors) is
the few lines below.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from rejoinder import __version__
from rejoinder.backends import refusal
from rejoinder.backends.base import NOT_ADMITTED, Admission
from rejoinder.backends.chunk import Chunk, MalformedChunk, chunk_from_json, chunks_from_json
from rejoinder.errors import BackendError
from rejoinder.tools.grammar import GRAMMAR_KEY

log = logging.getLogger(__name__)

_ERROR_BODY_LIMIT = 16384  # bytes of an upstream error body read (its reason is passed on)
_DRAIN_LIMIT = 64 * 1024  # bytes read after [DONE] before giving up on reusing the connection
_DRAIN_SECONDS = 10.0
_ASK_SECONDS = 5.0  # a question to the server about itself (context window, token count)


def transport_error(exc: BaseException) -> BackendError:
    if isinstance(exc, asyncio.TimeoutError):
        return BackendError("The model backend timed out.", "server_error")
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.InvalidURL):
        return BackendError("The model backend could not be reached.", "server_error")
    if isinstance(exc, aiohttp.ClientError):
        return BackendError("The connection to the model backend broke.", "server_error")
    return BackendError("The model backend failed.", "server_error")


def parse_chunk(data: str | bytes) -> Chunk:
    """One chunk, validated (``chunk.py``). An ``{"error": ...}`` payload, which some servers send
    in place of a chunk, fails the call with its reason (``refusal.py``); so does a chunk whose
    fields Rejoinder reads have the wrong types."""
    try:
        return chunk_from_json(data)
    except MalformedChunk as exc:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            payload = None
        if isinstance(payload, dict) and payload.get("error"):
            raise refusal.from_stream_error(payload["error"]) from None
        raise BackendError(str(exc), "server_error") from None


class SSEReader:
    """Server-sent events, fed line by line: ``feed`` returns the ``data`` of an event when a line
    completes one (multi-line data joined with a newline, per the spec). Comments, ``event:`` and
    ``id:`` lines are skipped."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def feed(self, raw: bytes) -> bytes | None:
        line = raw.rstrip(b"\r\n")
        if line.startswith(b"data:"):
            self.parts.append(line[6:] if line.startswith(b"data: ") else line[5:])
        elif not line and self.parts:
            data, self.parts = b"\n".join(self.parts), []
            return data
        return None


class ChunkReader:
    """Raw body bytes in, the chat-completion chunks they complete out; ``done`` once ``[DONE]``
    has been read (anything after it is ignored).

    Events are cut at blank lines, and the usual one-line ``data:`` event is taken whole; any other
    event goes through ``SSEReader`` line by line. A stream with CR line ends is read line by line
    from its first CR on."""

    def __init__(self) -> None:
        self.events = SSEReader()
        self.tail = b""  # an incomplete event (or, line by line, an incomplete line)
        self.by_line = False
        self.done = False
        self.error: BackendError | None = None

    def feed(self, block: bytes) -> list[Chunk]:
        data = self.tail + block if self.tail else block
        if not self.by_line and b"\r" in data:
            self.by_line = True
        parts = data.split(b"\n" if self.by_line else b"\n\n")
        self.tail = parts.pop()  # waits for the rest of it in the next block
        return self._parse(self._lines(parts) if self.by_line else self._frames(parts))

    def end(self) -> list[Chunk]:
        """The body ended: an event it left unterminated still counts."""
        tail, self.tail = self.tail, b""
        return self._parse(self._lines([tail, b""]) if self.by_line else self._frames([tail]))

    def _frames(self, frames: list[bytes]) -> list[bytes]:
        payloads: list[bytes] = []
        for frame in frames:
            if frame.startswith(b"data: ") and b"\n" not in frame:
                payloads.append(frame[6:])
            else:
                payloads += self._lines([*frame.split(b"\n"), b""])
        return payloads

    def _lines(self, lines: list[bytes]) -> list[bytes]:
        return [data for line in lines if (data := self.events.feed(line)) is not None]

    def _parse(self, payloads: list[bytes]) -> list[Chunk]:
        if self.done:
            return []
        for i, payload in enumerate(payloads):
            if payload.startswith(b"[DONE]"):
                self.done = True
                del payloads[i:]
                break
        if not payloads:
            return []
        try:
            return chunks_from_json(payloads)
        except MalformedChunk:
            pass
        chunks: list[Chunk] = []  # one by one: the chunks before the bad one still count
        for payload in payloads:
            try:
                chunks.append(parse_chunk(payload))
            except BackendError as exc:
                self.error = exc  # raised once the chunks before it are out
                break
        return chunks


def _buffered(content: aiohttp.StreamReader) -> bytes:
    """The bytes a broken body's reader still holds. aiohttp's ``readany`` raises the stream's
    error before it returns what arrived ahead of the error, so on a busy event loop the chunks
    sent just before a break were lost. Its buffer is private: should it move, nothing is
    recovered (the behaviour before)."""
    buffer = getattr(content, "_buffer", None)
    if not buffer:
        return b""
    pieces = [bytes(piece) for piece in buffer]
    pieces[0] = pieces[0][getattr(content, "_buffer_offset", 0):]
    return b"".join(pieces)


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read what follows ``[DONE]`` to the body's end, so the connection goes back to the pool.
    A server that sends more than ``_DRAIN_LIMIT`` bytes after it, or takes longer than
    ``_DRAIN_SECONDS`` to end its body, has its connection closed instead."""
    left = _DRAIN_LIMIT
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            while left > 0 and (block := await response.content.readany()):
                left -= len(block)
    except (TimeoutError, aiohttp.ClientError, ValueError):
        pass
    finally:
        response.release()


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (HTTPS_PROXY, NO_PROXY...), looked up once."""
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def upstream_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat tools as a server upstream reads them: a custom tool's grammar (for the embedded model) stays here."""
    return [{**t, "function": {k: v for k, v in t["function"].items() if k != GRAMMAR_KEY}}
            if GRAMMAR_KEY in (t.get("function") or {}) else t for t in tools]


def _sent(body: dict[str, Any]) -> dict[str, Any]:
    """The body as it goes upstream."""
    tools = body.get("tools")
    if not tools or not any(GRAMMAR_KEY in (t.get("function") or {}) for t in tools):
        return body
    return {**body, "tools": upstream_tools(tools)}


class OpenAICompatBackend:
    def __init__(self, base_url: str, api_key: str | None, timeout: float = 600.0):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream",
                        "User-Agent": f"rejoinder/{__version__}"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        # ``timeout`` bounds connecting and each wait for upstream bytes, not the whole answer,
        # which may stream for longer.
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self.proxy = _env_proxy(self.url)
        self._session: aiohttp.ClientSession | None = None
        self._drains: set[asyncio.Future[None]] = set()

    def _client(self) -> aiohttp.ClientSession:
        """Created on first use, inside the running event loop it belongs to."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30),
                timeout=self.timeout, skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    async def stream(self, body: dict[str, Any], admission: Admission = NOT_ADMITTED) -> AsyncIterator[list[Chunk]]:
        """The answer's chunks, in batches, after an empty batch once the backend has accepted the
        request (its HTTP status). A refusal is raised before that (``refusal.py``). It ends at
        ``[DONE]``: the end of the HTTP body after it can come in a later packet (a server that ends
        its body in a write of its own, a proxy in between), and the turn does not wait for it. It
        is read in the background, so the connection is still reused."""
        response: aiohttp.ClientResponse | None = None
        draining = False
        try:
            response = await self._client().post(self.url, data=orjson.dumps(_sent(body)), headers=self.headers,
                                                 proxy=self.proxy)
            if response.status >= 400:
                detail = await response.content.read(_ERROR_BODY_LIMIT)
                log.warning("backend answered HTTP %s: %r", response.status, detail[:500])
                raise refusal.from_status(response.status, detail)
            yield []
            reader = ChunkReader()
            try:
                # Whatever bytes are buffered are taken at once: a burst of chunks is one batch.
                async for block in response.content.iter_any():
                    chunks = reader.feed(block)
                    if chunks:
                        yield chunks
                    if reader.error:
                        raise reader.error
                    if reader.done:
                        break
                else:
                    chunks = reader.end()
                    if chunks:
                        yield chunks
                    if reader.error:
                        raise reader.error
            except aiohttp.ClientError:
                # The body broke. The chunks that arrived before the break are still part of the
                # answer (a failed response keeps its partial output), and [DONE] among them means
                # only the body's end was lost.
                chunks = reader.feed(_buffered(response.content))
                if chunks:
                    yield chunks
                if reader.error:
                    raise reader.error from None
                if not reader.done:
                    raise
            if not response.content.at_eof():
                self._drain_soon(response)
                draining = True
        except BackendError:
            raise
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.warning("backend call failed: %r", exc)
            raise transport_error(exc) from exc
        finally:
            if response is not None and not draining:
                response.release()  # back to the pool when read to its end; otherwise closed

    async def request_json(self, method: str, url: str, body: Any = None) -> Any:
        """A small JSON call to the same server (``context_window.py``, ``token_count.py``), on the
        backend's pool, with its credentials: the decoded answer, or None on any failure."""
        headers = {k: v for k, v in self.headers.items() if k != "Accept"}
        try:
            async with asyncio.timeout(_ASK_SECONDS):
                async with self._client().request(method, url, data=None if body is None else orjson.dumps(body),
                                                  headers=headers, proxy=self.proxy) as response:
                    if response.status != 200:
                        return None
                    return orjson.loads(await response.read())
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.debug("%s %s failed: %r", method, url, exc)
            return None

    @property
    def base_url(self) -> str:
        return self.url.removesuffix("/chat/completions")

    def _drain_soon(self, response: aiohttp.ClientResponse) -> None:
        task = asyncio.ensure_future(_drain(response))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def aclose(self) -> None:
        for task in list(self._drains):
            task.cancel()
        if self._drains:
            await asyncio.gather(*self._drains, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
