"""Large inputs and the event loop: small requests' latency while 40 MB inputs are being stored.

One ``rejoinder serve`` process (SQLite by default) in front of the scripted upstream. Small
non-streamed responses run back to back from a few clients, first alone, then while another client
stores 40 MB inputs one after another: as a response's input (``POST /v1/responses``, which also
sends it to the model) and as a conversation item (``POST /v1/conversations/{id}/items``, storage
only). A large payload that blocks the event loop (a write, a read, a JSON encoding on the loop's
thread) shows as the small requests' p99 growing by about that much.

    python -m bench.bench_large_input [--seconds 8] [--concurrency 2] [--mb 40] [--items 1]
                                      [--storage-url URL] [--base REF]

``--base`` (a git ref, or a path to a ``src`` tree) runs the same phases on that version too, one
server each, phase by phase alternately, so both sides see the machine alike: before and after.

First, without HTTP, the store alone: the longest the event loop stalls while one 40 MB input is
written with a response (a heartbeat task measures it), in a process of each side's own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fake_upstream, pct, rejoinder
from bench.compare import source_tree

SMALL = {"model": "fake", "input": "hello"}


async def small_requests(url: str, seconds: float, concurrency: int) -> list[float]:
    """Latencies (ms) of small stored responses, ``concurrency`` clients back to back."""
    samples: list[float] = []
    stop = time.monotonic() + seconds

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                r = await http.post("/v1/responses", json=SMALL)
                samples.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return samples


async def large_inputs(url: str, kind: str, size_mb: int, stop: asyncio.Event,
                       items: int = 1) -> tuple[int, list[float]]:
    """Store ``size_mb`` MB inputs one after another until ``stop``; (how many, their latencies).
    With ``items`` > 1 the input is a long history of that many messages (a stateless agent's)."""
    blob = "x" * (size_mb * 1024 * 1024 // items)
    durations: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        conv = (await http.post("/v1/conversations", json={})).json()["id"]
        n = 0
        while not stop.is_set():
            # Encoded here, not by httpx: the stdlib encoder would take the client's CPU for longer.
            if kind == "response":
                body = orjson.dumps({"model": "fake", "input": [{"role": "user", "content": blob + str(n)}] * items})
                path = "/v1/responses"
            else:
                item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": blob + str(n)}]}
                body = orjson.dumps({"items": [item] * min(items, 20)})  # items.create takes at most 20
                path = f"/v1/conversations/{conv}/items"
            t0 = time.perf_counter()
            r = await http.post(path, content=body, headers={"content-type": "application/json"})
            durations.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
            n += 1
            await asyncio.sleep(0.2)  # the small requests also run between two large ones
    return n, durations


async def under_load(url: str, kind: str, seconds: float, concurrency: int,
                     size_mb: int, items: int = 1) -> tuple[list[float], int, list[float]]:
    stop = asyncio.Event()
    large = asyncio.ensure_future(large_inputs(url, kind, size_mb, stop, items))
    await asyncio.sleep(0.5)  # the first large request is on its way
    samples = await small_requests(url, seconds, concurrency)
    stop.set()
    stored, durations = await large
    return samples, stored, durations


async def heartbeat(done: asyncio.Event, stalls: list[float]) -> None:
    """Wakes every millisecond until ``done``; each gap between two wakes goes into ``stalls``."""
    last = time.perf_counter()
    while not done.is_set():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        stalls.append(now - last)
        last = now


async def store_stall(size_mb: int, rounds: int = 4) -> list[tuple[float, float]]:
    """(write ms, longest loop stall ms) for ``rounds`` responses created with a ``size_mb`` input,
    in this process's ``rejoinder`` (which may be the base tree's: see ``main``)."""
    from rejoinder.store.db import Database
    from rejoinder.store.migrations import migrate
    from rejoinder.store.responses import ResponseStore

    try:
        from rejoinder.tenant import Tenant
        owner: object = Tenant("bench")
    except ImportError:  # a tree from before tenants were a type
        owner = "bench"
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/large.db")
        await migrate(db)
        store = ResponseStore(db, lease_owner="bench/1")
        out = []
        for n in range(rounds):
            blob = "x" * (size_mb * 1024 * 1024) + str(n)
            item = {"type": "message", "id": f"msg_{n}", "role": "user",
                    "content": [{"type": "input_text", "text": blob}]}
            body = {"id": f"resp_{n}", "status": "in_progress", "model": "m", "created_at": 1.0, "output": []}
            stalls: list[float] = []
            done = asyncio.Event()
            beat = asyncio.ensure_future(heartbeat(done, stalls))
            await asyncio.sleep(0.01)
            t0 = time.perf_counter()
            await store.create(body, owner, [item])  # type: ignore[arg-type]
            took = time.perf_counter() - t0
            done.set()
            await beat
            out.append((took * 1000, max(stalls) * 1000))
        await db.dispose()
    return out


def stall_line(side: str, size_mb: int, tree: str | None) -> str:
    """``store_stall`` run in a process of its own on ``tree``'s code."""
    import subprocess

    env = {**os.environ, **({"PYTHONPATH": tree} if tree else {})}
    code = ("import asyncio, json, bench.bench_large_input as b; "
            f"print(json.dumps(asyncio.run(b.store_stall({size_mb}))))")
    result = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    rounds = orjson.loads(result.stdout.strip().splitlines()[-1])
    writes, stalls = [w for w, _ in rounds], [s for _, s in rounds]
    return (f"{side + f': store a {size_mb} MB input':<56} write {statistics.median(writes):5.0f} ms  "
            f"longest loop stall p50 {statistics.median(stalls):5.0f} ms  max {max(stalls):5.0f} ms")


def line(name: str, samples: list[float]) -> str:
    return (f"{name:<56} p50 {statistics.median(samples):7.2f} ms  p99 {pct(samples, 0.99):7.2f} ms  "
            f"max {max(samples):7.2f} ms  (n={len(samples)})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--mb", type=int, default=40)
    parser.add_argument("--items", type=int, default=1, help="split the large input into this many messages")
    parser.add_argument("--storage-url", default=None, help="default: SQLite in a temporary directory")
    parser.add_argument("--base", default=None, help="a git ref or src path to measure beside this tree")
    args = parser.parse_args()
    if args.base and args.storage_url:
        parser.error("--base runs each side on SQLite of its own (the two schema versions cannot share a database)")

    with tempfile.TemporaryDirectory() as scratch, fake_upstream(words=5) as upstream, ExitStack() as stack:
        trees: dict[str, str | None] = {"this tree": None}
        if args.base:
            trees = {f"base ({args.base})": source_tree(args.base, Path(scratch)), **trees}
        for side, tree in trees.items():
            print(stall_line(side, args.mb, tree))
        urls: dict[str, str] = {}
        for side, tree in trees.items():
            if tree is not None:
                os.environ["PYTHONPATH"] = tree  # the server imports rejoinder from this tree
            urls[side], _ = stack.enter_context(rejoinder(upstream, args.storage_url))
            os.environ.pop("PYTHONPATH", None)
            asyncio.run(small_requests(urls[side], 2, args.concurrency))  # warm-up
        for kind in ("alone", "item", "response"):
            for side, url in urls.items():
                if kind == "alone":
                    samples = asyncio.run(small_requests(url, args.seconds, args.concurrency))
                    print(line(f"{side}: small responses, alone", samples))
                    continue
                samples, stored, durations = asyncio.run(
                    under_load(url, kind, args.seconds, args.concurrency, args.mb, args.items))
                print(line(f"{side}: small responses, {args.mb} MB {kind}s stored", samples))
                print(f"{'':<44} ({stored} large {kind}s, {statistics.median(durations):.0f} ms each at p50)")


if __name__ == "__main__":
    main()
