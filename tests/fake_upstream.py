"""A scripted OpenAI-compatible chat-completions server for tests and benchmarks.

Tests queue turns (text, tool calls, errors, a stream that breaks) and read back the exact
requests Rejoinder sent upstream. With nothing queued it uses ``responder`` (if set) or echoes
the last user message.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

STAMP = b"@@SENT_AT@@"  # replaced in a streamed chunk by its send time (time.perf_counter())


@dataclass
class Turn:
    text: str = ""
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)  # (name, arguments dict or raw string)
    reasoning: str = ""
    finish: str | None = None
    status: int = 200  # non-200: fail with this HTTP status before streaming
    error: dict[str, Any] | None = None  # the body of that failure (default: a scripted server error)
    break_after: int | None = None  # drop the connection after this many chunks (sent in one write)
    usage: tuple[int, int, int] = (10, 5, 0)  # prompt, completion, cached
    delay: float = 0.0  # seconds before each chunk
    linger: float = 0.0  # seconds between [DONE] and the end of the body
    gate: threading.Event | None = None  # the first chunk waits until it is set (at most 30 s)


def text(t: str, **kw: Any) -> Turn:
    return Turn(text=t, **kw)


def calls(*pairs: tuple[str, Any], **kw: Any) -> Turn:
    return Turn(tool_calls=list(pairs), **kw)


def token_logprob(token: str, top: int) -> dict[str, Any]:
    """A made-up, deterministic log probability of ``token`` and its ``top`` alternatives, as chat
    completions sends them (``choices[].logprobs.content[]``)."""
    value = -round(len(token) / 10, 3)
    alternatives = [{"token": token, "logprob": value, "bytes": list(token.encode())}]
    alternatives += [{"token": f"{token}~{i}", "logprob": value - i, "bytes": list(f"{token}~{i}".encode())}
                     for i in range(1, top)]
    return {"token": token, "logprob": value, "bytes": list(token.encode()), "top_logprobs": alternatives[:top]}


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None,
           logprobs: dict[str, Any] | None = None) -> bytes:
    body = {
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "fake-model",
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": logprobs}],
        "usage": usage,
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def render(turn: Turn, top_logprobs: int | None = None, call_id: Callable[[int], str] | None = None) -> list[bytes]:
    """The turn's chunks; with ``top_logprobs`` (the request asked for logprobs) each text chunk
    carries its token's log probability and that many alternatives; ``call_id`` names its calls."""
    out = [_chunk({"role": "assistant", "content": ""})]
    if turn.reasoning:
        out.extend(_chunk({"reasoning_content": w}) for w in _split(turn.reasoning))
    out.extend(_chunk({"content": w}, logprobs=None if top_logprobs is None else
                      {"content": [token_logprob(w, top_logprobs)]}) for w in _split(turn.text))
    for i, (name, args) in enumerate(turn.tool_calls):
        raw = args if isinstance(args, str) else json.dumps(args)
        cid = call_id(i) if call_id else f"call_fake{i}_{int(time.time() * 1e6) % 10**9}"
        out.append(_chunk({"tool_calls": [{"index": i, "id": cid,
                                           "type": "function", "function": {"name": name, "arguments": ""}}]}))
        for piece in _split(raw, 7):
            out.append(_chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    finish = turn.finish or ("tool_calls" if turn.tool_calls else "stop")
    out.append(_chunk({}, finish=finish))
    p, c, cached = turn.usage
    out.append(_chunk({}, usage={"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
                                 "prompt_tokens_details": {"cached_tokens": cached}}))
    out.append(b"data: [DONE]\n\n")
    return out


def _split(s: str, size: int = 0) -> list[str]:
    if not s:
        return []
    if size:
        return [s[i:i + size] for i in range(0, len(s), size)]
    words = s.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.peers: list[int] = []  # the client port of each request: a repeated one is a reused connection
        self.script: deque[Turn] = deque()
        self.responder: Callable[[dict[str, Any]], Turn] | None = None
        # A chat template's checks (tests/strict_templates.py): (status, error body) refuses the request.
        self.check: Callable[[dict[str, Any]], tuple[int, dict[str, Any]] | None] | None = None
        self.call_id: Callable[[int], str] | None = None  # the ids of the calls it makes
        # Other paths (GET /v1/models, /props, POST /tokenize...): a JSON answer, or a function of the body.
        self.info: dict[str, Any] = {}
        self.embedding_requests: list[dict[str, Any]] = []
        self.embedding_failures = 0  # the next N embeddings requests answer 500
        self.embedding_gate: threading.Event | None = None  # embeddings wait until it is set (30 s at most)
        self.broken = threading.Event()  # set when a scripted ``break_after`` stream has broken
        self.app = self._build()

    def queue(self, *turns: Turn) -> None:
        self.script.extend(turns)

    def reset(self) -> None:
        self.requests.clear()
        self.peers.clear()
        self.script.clear()
        self.responder = None
        self.check = None
        self.call_id = None
        self.info = {}
        self.embedding_requests.clear()
        self.embedding_failures = 0
        self.embedding_gate = None
        self.broken.clear()

    def _next(self, body: dict[str, Any]) -> Turn:
        if self.script:
            return self.script.popleft()
        if self.responder is not None:
            return self.responder(body)
        last = next((m for m in reversed(body["messages"]) if m["role"] == "user"), {"content": ""})
        content = last["content"] if isinstance(last["content"], str) else json.dumps(last["content"])
        return text(f"echo: {content}")

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            body = await request.json()
            self.requests.append(body)
            self.peers.append(request.client.port if request.client else 0)
            refused = self.check(body) if self.check is not None else None
            if refused is not None:
                return JSONResponse(refused[1], status_code=refused[0])
            turn = self._next(body)
            if turn.status != 200:
                return JSONResponse(turn.error or {"error": {"message": "scripted failure", "type": "server_error"}},
                                    status_code=turn.status)
            frames = render(turn, body.get("top_logprobs", 0) if body.get("logprobs") else None, self.call_id)

            async def gen() -> Any:
                if turn.break_after is not None:
                    # The chunks and the break leave together, so the client sees both at once: the
                    # harder case (and, on a loaded machine, the usual one).
                    yield b"".join(frames[:turn.break_after])
                    self.broken.set()
                    raise RuntimeError("scripted broken stream")
                for i, frame in enumerate(frames):
                    if turn.gate is not None and i == 0:
                        await asyncio.to_thread(turn.gate.wait, 30)
                    if turn.delay:
                        await asyncio.sleep(turn.delay)
                    if STAMP in frame:  # benchmarks: when this chunk left, on the host's monotonic clock
                        frame = frame.replace(STAMP, f"{time.perf_counter():.7f}".encode())
                    yield frame
                if turn.linger:
                    await asyncio.sleep(turn.linger)

            return StreamingResponse(gen(), media_type="text/event-stream")

        @app.post("/v1/embeddings")
        async def embeddings(request: Request) -> Any:
            body = await request.json()
            self.embedding_requests.append(body)
            if self.embedding_gate is not None:
                await asyncio.to_thread(self.embedding_gate.wait, 30)
            if self.embedding_failures:
                self.embedding_failures -= 1
                return JSONResponse({"error": {"message": "scripted failure", "type": "server_error"}},
                                    status_code=500)
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [{"object": "embedding", "index": i, "embedding": hashed_embedding(t, body.get("dimensions", 64))}
                    for i, t in enumerate(inputs)]
            return {"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 0,
                                                                                       "total_tokens": 0}}

        @app.api_route("/{path:path}", methods=["GET", "POST"])
        async def other(path: str, request: Request) -> Any:
            answer = self.info.get("/" + path)
            if answer is None:
                return JSONResponse({"error": {"message": "not found"}}, status_code=404)
            if callable(answer):
                answer = answer(await request.json())
            return JSONResponse(answer)

        return app


def hashed_embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic bag-of-words vector: texts sharing words point the same way."""
    import hashlib
    import re

    vector = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vector[int.from_bytes(digest[:4], "big") % dimensions] += 1.0 if digest[4] % 2 else -1.0
    return vector if any(vector) else [1.0] + [0.0] * (dimensions - 1)


def _prompt_server(config: Any) -> Any:
    """A uvicorn ``Server`` that stops as soon as it is asked. uvicorn polls for the exit flag every
    100 ms, sleeps 100 ms at shutdown and polls its connections every 100 ms: about 0.15 s of each
    test server's stop, over a minute across the suite. Same steps, without the waits."""
    import uvicorn

    class PromptServer(uvicorn.Server):
        wake: asyncio.Event | None = None
        loop: asyncio.AbstractEventLoop | None = None

        async def main_loop(self) -> None:
            self.loop, self.wake = asyncio.get_running_loop(), asyncio.Event()
            counter = 0
            should_exit = await self.on_tick(counter)
            while not should_exit:
                counter = (counter + 1) % 864000
                try:
                    await asyncio.wait_for(self.wake.wait(), 0.1)
                except TimeoutError:
                    pass
                should_exit = await self.on_tick(counter)

        def stop_soon(self) -> None:
            self.should_exit = True
            if self.loop is not None and self.wake is not None:
                try:
                    self.loop.call_soon_threadsafe(self.wake.set)
                except RuntimeError:  # the loop has closed already
                    pass

        async def shutdown(self, sockets: list[Any] | None = None) -> None:
            for server in self.servers:
                server.close()
            for sock in sockets or []:
                sock.close()
            for connection in list(self.server_state.connections):
                connection.shutdown()  # idle keep-alive connections close; busy ones finish first
            try:
                async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                    # uvicorn's own sets, with no event to wait on: polled, as uvicorn does, but finely.
                    while self.server_state.connections or self.server_state.tasks:  # noqa: ASYNC110
                        await asyncio.sleep(0.005)
                    for server in self.servers:
                        await server.wait_closed()
            except TimeoutError:
                for task in self.server_state.tasks:
                    task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
            if not self.force_exit:
                await self.lifespan.shutdown()

    return PromptServer(config)


class ThreadServer:
    """Runs an ASGI app with uvicorn on a loopback port in a background thread."""

    def __init__(self, app: Any, port: int = 0, http: Any = "auto"):
        import socket

        import uvicorn

        self.sock = socket.socket()
        # Without it small SSE writes wait on delayed ACKs: ~40 ms per streamed request on loopback.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5, http=http)
        self.server = _prompt_server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.time() > deadline:
                raise RuntimeError("server failed to start")
            time.sleep(0.01)
        return self

    def stop_soon(self) -> None:
        """Ask the server to stop without waiting (``join`` waits): several stop side by side."""
        self.server.stop_soon()

    def join(self) -> None:
        self.thread.join(timeout=20)
        self.sock.close()

    def __exit__(self, *exc: Any) -> None:
        self.stop_soon()
        self.join()
