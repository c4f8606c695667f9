"""Core benchmark: chat completions direct vs Rejoinder (non-stream and stream), side by side.

Part 1, an upstream that answers at once: p50/p99 latency at concurrency 1 (the cases interleaved,
call by call, so the shared machine's drift weighs on each alike), requests/s at concurrency 16
and 64, server CPU per request, and the added latency per stored turn. A pass-through proxy
(bench/passthrough.py) runs beside them as the floor: what any Python proxy adds on this machine,
which drifts by 2x from day to day; Rejoinder's own cost is what it adds beyond that floor.
Part 2, an upstream that paces its chunks (``--pace`` ms apart, like a fast model): how long each
text chunk takes from the upstream's send to the client, direct and through Rejoinder, for the
first chunk and for every chunk. Every chunk carries its send time (see bench.common).

    python -m bench.bench_core [--requests 300] [--pace 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx

from bench.common import cpu_seconds, fake_upstream, passthrough, rejoinder, rss_mb, summary

# A call returns, for a streamed request, (ms from the request to its first text, [ms from the
# upstream's send to the client, per text chunk]); None when not streamed.
Timings = tuple[float, list[float]]
Call = Callable[[httpx.AsyncClient], Awaitable[Timings | None]]


def direct(up: str) -> Call:
    body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True}}

    async def call(client: httpx.AsyncClient) -> Timings | None:
        t0 = time.perf_counter()
        first, chunks = None, []
        async with client.stream("POST", up + "/v1/chat/completions", json=body) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: {"):
                    now = time.perf_counter()
                    choices = json.loads(line[6:])["choices"]
                    content = choices[0]["delta"].get("content") if choices else None
                    if content:
                        first = first or (now - t0) * 1000
                        chunks += [(now - float(w)) * 1000 for w in content.split()]
        return (first or 0.0), chunks

    return call


def via_rejoinder(url: str, stream: bool) -> Call:
    body = {"model": "fake", "input": "hi", "stream": stream}

    async def call(client: httpx.AsyncClient) -> Timings | None:
        t0 = time.perf_counter()
        if not stream:
            r = await client.post(url + "/v1/responses", json=body)
            assert r.status_code == 200 and r.json()["status"] == "completed", r.text
            return None
        first, chunks = None, []
        async with client.stream("POST", url + "/v1/responses", json=body) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: ") and "output_text.delta" in line:
                    now = time.perf_counter()
                    first = first or (now - t0) * 1000
                    chunks += [(now - float(w)) * 1000 for w in json.loads(line[6:])["delta"].split()]
                if line.startswith("data: ") and '"response.completed"' in line:
                    assert json.loads(line[6:])["response"]["status"] == "completed"
        return (first or 0.0), chunks

    return call


async def latency(calls: list[Call], n: int) -> list[tuple[list[float], list[Timings]]]:
    """``n`` sequential calls of each case, interleaved (one of each in turn), so that a drift of
    the shared machine's speed during the run weighs on every case alike. One client per case."""
    clients = [httpx.AsyncClient(timeout=60) for _ in calls]
    try:
        for _ in range(20):
            for call, client in zip(calls, clients, strict=True):
                await call(client)  # warm-up
        results: list[tuple[list[float], list[Timings]]] = [([], []) for _ in calls]
        for _ in range(n):
            for call, client, (totals, timings) in zip(calls, clients, results, strict=True):
                t0 = time.perf_counter()
                timing = await call(client)
                totals.append((time.perf_counter() - t0) * 1000)
                if timing is not None:
                    timings.append(timing)
        return results
    finally:
        for client in clients:
            await client.aclose()


async def throughput(call: Call, concurrency: int, n: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                await call(client)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - t0)


async def part1(n: int) -> None:
    with fake_upstream() as up, rejoinder(up) as (url, pid), passthrough(up) as (floor_url, floor_pid):
        cases = [("direct chat completions", direct(up), None),
                 ("pass-through proxy (floor)", direct(floor_url), floor_pid),
                 ("rejoinder non-stream", via_rejoinder(url, False), pid),
                 ("rejoinder stream", via_rejoinder(url, True), pid)]
        p50 = {}
        measured = await latency([call for _, call, _ in cases], n)
        print(f"{'case':26} {'latency at concurrency 1':36} {'req/s c=16':>10} {'req/s c=64':>10} "
              f"{'server CPU/req':>15}")
        for (name, call, server), (totals, _) in zip(cases, measured, strict=True):
            cpu = 0.0
            if server:  # CPU per request, measured apart: the latency run interleaves the cases
                cpu0 = cpu_seconds(server)
                await latency([call], n)
                cpu = (cpu_seconds(server) - cpu0) / (n + 20) * 1000
            rps16 = await throughput(call, 16, n)
            rps64 = await throughput(call, 64, n)
            p50[name] = statistics.median(totals)
            shown = f"{cpu:12.2f} ms" if server else f"{'-':>15}"
            print(f"{name:26} {summary(totals):36} {rps16:10.0f} {rps64:10.0f} {shown}")
        direct_p50, floor_p50 = p50["direct chat completions"], p50["pass-through proxy (floor)"]
        print(f"added p50 latency of the pass-through proxy (the floor): {floor_p50 - direct_p50:6.2f} ms")
        for name in ("rejoinder non-stream", "rejoinder stream"):
            print(f"added p50 latency per stored turn, {name}: {p50[name] - direct_p50:6.2f} ms "
                  f"({p50[name] - floor_p50:5.2f} ms over the floor)")
        print(f"server RSS after the run: {rss_mb(pid):.0f} MB")


async def part2(n: int, pace_ms: float) -> None:
    with fake_upstream(delay=pace_ms / 1000) as up, rejoinder(up) as (url, _):
        print(f"\nupstream pacing its 20 chunks {pace_ms:g} ms apart; {n} streamed requests each:")
        measured = await latency([direct(up), via_rejoinder(url, True)], n)
        results = {"direct": measured[0][1], "via Rejoinder": measured[1][1]}
        for label, pick in (("first text, from the request", lambda t: [t[0]]),
                            ("first text chunk, upstream send -> client", lambda t: t[1][:1]),
                            ("every text chunk, upstream send -> client", lambda t: t[1])):
            d = [v for t in results["direct"] for v in pick(t)]
            r = [v for t in results["via Rejoinder"] for v in pick(t)]
            print(f"{label:42} direct {summary(d)} | via Rejoinder {summary(r)} | "
                  f"added p50 {statistics.median(r) - statistics.median(d):5.2f} ms")


async def main(n: int, pace_ms: float) -> None:
    await part1(n)
    await part2(max(n // 3, 30), pace_ms)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--pace", type=float, default=2.0, help="ms between the paced upstream's chunks")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.pace))
