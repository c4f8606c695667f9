"""Long conversations: listing a page of a 10,000-item conversation, and loading its whole context.

Three conversations of 10,000 items each share the table, so a query that read unrelated rows
would show. Prints p50/p95 per operation, in the store and over HTTP (uvicorn on loopback,
keep-alive client). Target: a page in <= 5 ms p50.

    python bench/bench_conversations.py [--items 10000] [--rounds 300] [--storage-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from rejoinder.config import Settings
from rejoinder.http.app import create_app
from rejoinder.store.conversations import ConversationStore, append_items
from rejoinder.store.db import Database
from rejoinder.store.migrations import migrate
from rejoinder.tenant import Tenant

ANONYMOUS = Tenant("anonymous")

CONVERSATIONS = ("conv_a", "conv_b", "conv_c")


def _item(conv: str, i: int) -> dict[str, Any]:
    if i % 4 == 2:
        return {"type": "function_call", "id": f"fc_{conv}_{i}", "call_id": f"call_{i}", "name": "get_user_id",
                "arguments": "{\"username\":\"charlie\"}", "status": "completed"}
    if i % 4 == 3:
        return {"type": "function_call_output", "id": f"fco_{conv}_{i}", "call_id": f"call_{i - 1}",
                "output": "user_11111", "status": "completed"}
    role = "user" if i % 4 == 0 else "assistant"
    part = {"type": "input_text", "text": f"message {i} " + "lorem ipsum " * 10} if role == "user" else \
        {"type": "output_text", "text": f"answer {i} " + "dolor sit amet " * 10, "annotations": []}
    return {"type": "message", "id": f"msg_{conv}_{i}", "role": role, "status": "completed", "content": [part]}


def _report(name: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[int(len(ms) * 0.95) - 1]
    print(f"{name:<52} p50 {statistics.median(ms):7.3f} ms   p95 {p95:7.3f} ms   (n={len(ms)})")


async def _time(fn: Callable[[], Awaitable[Any]], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t)
    return out


async def fill(url: str, n: int) -> None:
    db = Database(url)
    await migrate(db)
    store = ConversationStore(db)
    for conv in CONVERSATIONS:
        await store.create(conv, ANONYMOUS, {}, [])
        items = [_item(conv, i) for i in range(n)]
        await db.write(lambda conn, conv=conv, items=items: append_items(conn, conv, items))
    await db.dispose()


async def bench_store(url: str, n: int, rounds: int) -> None:
    db = Database(url)
    store = ConversationStore(db)
    mid = f"msg_conv_b_{n // 2}"
    _report("store: first page (limit 20, desc)",
            await _time(lambda: store.list_items("conv_b", ANONYMOUS, None, 20, "desc"), rounds))
    _report("store: page after a middle id (limit 20, asc)",
            await _time(lambda: store.list_items("conv_b", ANONYMOUS, mid, 20, "asc"), rounds))
    _report("store: page of 100 (desc)", await _time(lambda: store.list_items("conv_b", ANONYMOUS, None, 100, "desc"),
                                                     rounds))
    _report(f"store: whole context ({n} items, model context)",
            await _time(lambda: store.context_items("conv_b", ANONYMOUS), max(5, rounds // 30)))
    await db.dispose()


def serve(url: str, data_dir: str, port: int) -> None:
    """The server side of the HTTP figures, in its own process (a client sharing the server's
    process and GIL adds ~40 ms per request and measures nothing real)."""
    import uvicorn

    settings = Settings(data_dir=Path(data_dir), storage_url=url, embedded={"enabled": "off"})  # type: ignore[arg-type]
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")


def bench_http(url: str, data_dir: Path, n: int, rounds: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, __file__, "--serve", url, str(data_dir), str(port)])
    mid = f"msg_conv_b_{n // 2}"
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            deadline = time.time() + 30
            while True:
                try:
                    http.get("/health").raise_for_status()
                    break
                except httpx.TransportError:
                    if time.time() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.1)
            for path, name, more in [
                ("/health", "http: GET /health (baseline)", None),
                ("/v1/conversations/conv_b/items", "http: GET items (default: 20, desc)", True),
                (f"/v1/conversations/conv_b/items?after={mid}&order=asc", "http: GET items after a middle id", True),
                ("/v1/conversations/conv_b/items?limit=100", "http: GET items limit=100", True),
            ]:
                http.get(path).raise_for_status()
                samples = []
                for _ in range(rounds):
                    t = time.perf_counter()
                    r = http.get(path)
                    samples.append(time.perf_counter() - t)
                    assert r.status_code == 200 and (more is None or r.json()["has_more"] is more)
                _report(name, samples)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--storage-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--serve", nargs=3, metavar=("URL", "DATA_DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = args.storage_url or f"sqlite:///{tmp}/bench.db"
        t = time.perf_counter()
        asyncio.run(fill(url, args.items))
        print(f"filled {len(CONVERSATIONS)} conversations x {args.items} items in {time.perf_counter() - t:.1f} s "
              f"({url.split(':')[0]})")
        asyncio.run(bench_store(url, args.items, args.rounds))
        bench_http(url, Path(tmp), args.items, args.rounds)


if __name__ == "__main__":
    main()
