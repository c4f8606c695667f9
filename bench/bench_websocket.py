"""WebSocket mode against HTTP: a 20-call tool loop, and the memory of idle sockets.

A scripted upstream answers each model call of a loop with a function call (20 of them), then with
a short text. The same loop runs, interleaved, three ways against one ``rejoinder serve`` process:

* ``direct``: the 21 streamed chat completions sent to the upstream itself (the floor);
* ``http``: ``POST /v1/responses``, streamed, ``store: false``, the whole history every turn (as
  Codex does over HTTP);
* ``websocket``: one socket, ``store: false``, each turn ``previous_response_id`` + only the new
  ``function_call_output`` (as Codex does over the socket).

It prints each way's wall time per loop and the latency Rejoinder adds per turn (over ``direct``).
Then it opens ``--sockets`` idle WebSockets to a fresh server and prints its resident memory before
and after (and per socket).

Run: ``python -m bench.bench_websocket [--loops 10] [--sockets 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.common import rejoinder, rss_mb, scripted_upstream

CALLS = 20
TOOL = {"type": "function", "name": "read_page", "parameters": {"type": "object", "properties": {}}}
OUTPUT = "page text " * 50  # what the client's tool returns each turn


@contextmanager
def tool_loop_upstream() -> Iterator[str]:
    """The fake upstream: a call to read_page while the transcript has fewer than CALLS tool results."""
    with scripted_upstream(
        "from tests.fake_upstream import calls, text\n"
        "def respond(body):\n"
        "    f.requests.clear()\n"
        "    done = sum(1 for m in body['messages'] if m['role'] == 'tool')\n"
        f"    return text('all read') if done >= {CALLS} else calls(('read_page', {{'n': done}}))\n"
        "f.responder = respond\n"
    ) as url:
        yield url


async def _sse_final(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with client.stream("POST", url, json=body) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: ") and '"response.completed"' in line[:60]:
                final: dict[str, Any] = json.loads(line[6:])["response"]
                return final
    raise RuntimeError("no response.completed")


async def direct_loop(client: httpx.AsyncClient, upstream: str) -> int:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Read every page."}]
    tools = [{"type": "function", "function": {"name": "read_page", "parameters": TOOL["parameters"]}}]
    turns = 0
    while True:
        turns += 1
        call = None
        async with client.stream("POST", upstream + "/v1/chat/completions", json={
                "model": "fake", "messages": messages, "tools": tools, "stream": True}) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: {") and '"tool_calls":[' in line.replace(" ", ""):
                    delta = json.loads(line[6:])["choices"][0]["delta"]["tool_calls"][0]
                    if delta.get("id"):
                        call = {"id": delta["id"], "type": "function",
                                "function": {"name": "read_page", "arguments": ""}}
                    if call is not None:
                        call["function"]["arguments"] += delta["function"].get("arguments") or ""
        if call is None:
            return turns
        messages += [{"role": "assistant", "content": None, "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": call["id"], "content": OUTPUT}]


async def http_loop(client: httpx.AsyncClient, server: str) -> int:
    history: list[dict[str, Any]] = [{"role": "user", "content": "Read every page."}]
    turns = 0
    while True:
        turns += 1
        final = await _sse_final(client, server + "/v1/responses", {
            "model": "fake", "input": history, "tools": [TOOL], "store": False, "stream": True})
        call = final["output"][-1]
        if call["type"] != "function_call":
            return turns
        history += [*final["output"], {"type": "function_call_output", "call_id": call["call_id"], "output": OUTPUT}]


async def _until_completed(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message = await ws.recv()
        if '"response.completed"' in message[:60]:
            final: dict[str, Any] = json.loads(message)["response"]
            return final
        if message.startswith('{"type":"error"'):
            raise RuntimeError(message)


async def websocket_loop(ws: ClientConnection) -> int:
    body: dict[str, Any] = {"type": "response.create", "model": "fake", "tools": [TOOL], "store": False,
                            "input": [{"role": "user", "content": "Read every page."}]}
    turns = 0
    while True:
        turns += 1
        await ws.send(json.dumps(body))
        final = await _until_completed(ws)
        call = final["output"][-1]
        if call["type"] != "function_call":
            return turns
        body = {**body, "previous_response_id": final["id"],
                "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": OUTPUT}]}


async def tool_loops(loops: int) -> None:
    with tool_loop_upstream() as upstream, rejoinder(upstream) as (server, _):
        ws_url = server.replace("http://", "ws://") + "/v1/responses"
        times: dict[str, list[float]] = {"direct": [], "http": [], "websocket": []}
        turns = 0
        async with httpx.AsyncClient(timeout=60) as client, connect(ws_url, max_size=2**24) as ws:
            for i in range(loops + 1):  # the first round warms everything up and is not counted
                order = ["direct", "http", "websocket"]
                for way in (order if i % 2 else list(reversed(order))):
                    start = time.perf_counter()
                    if way == "direct":
                        turns = await direct_loop(client, upstream)
                    elif way == "http":
                        turns = await http_loop(client, server)
                    else:
                        turns = await websocket_loop(ws)
                    if i:
                        times[way].append((time.perf_counter() - start) * 1000)
        floor = statistics.median(times["direct"])
        print(f"20-call tool loop ({turns} model calls a loop), median of {loops} loops:")
        for way, values in times.items():
            loop = statistics.median(values)
            added = (loop - floor) / turns
            print(f"  {way:10s} {loop:8.1f} ms a loop   {loop / turns:6.2f} ms a turn   "
                  f"added by Rejoinder {added:6.2f} ms a turn")
        http_added = (statistics.median(times["http"]) - floor) / turns
        ws_added = (statistics.median(times["websocket"]) - floor) / turns
        print(f"  WebSocket overhead / HTTP overhead: {ws_added / http_added:.2f}")


async def idle_sockets(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * count + 256)), hard))
    with tool_loop_upstream() as upstream, rejoinder(upstream) as (server, pid):
        ws_url = server.replace("http://", "ws://") + "/v1/responses"
        sockets = [await connect(ws_url) for _ in range(10)]  # warm the code paths first
        await asyncio.sleep(1)
        before = rss_mb(pid)
        for _ in range(count):
            sockets.append(await connect(ws_url))
        await asyncio.sleep(1)
        after = rss_mb(pid)
        print(f"{count} idle WebSockets: server RSS {before:.1f} MB -> {after:.1f} MB "
              f"({(after - before) * 1024 / count:.1f} KB a socket)")
        await asyncio.gather(*(s.close() for s in sockets))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loops", type=int, default=10)
    parser.add_argument("--sockets", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(tool_loops(args.loops))
    asyncio.run(idle_sockets(args.sockets))


if __name__ == "__main__":
    main()
