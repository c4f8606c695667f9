"""Core benchmark: chat completions direct vs Rejoinder (non-stream and stream), side by side.

Prints p50/p99 latency at concurrency 1, requests/s at concurrency 16 and 64, the time from the
backend's first chunk to Rejoinder's first text delta, and the server's RSS.

    python -m bench.bench_core [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx

from bench.common import fake_upstream, rejoinder, rss_mb, summary

Call = Callable[[httpx.AsyncClient], Awaitable[float | None]]


def direct(up: str) -> Call:
    body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True}}

    async def call(client: httpx.AsyncClient) -> float | None:
        first = None
        t0 = time.perf_counter()
        async with client.stream("POST", up + "/v1/chat/completions", json=body) as r:
            async for line in r.aiter_lines():
                if first is None and '"content": "w' in line:
                    first = time.perf_counter() - t0
        return first

    return call


def via_rejoinder(url: str, stream: bool) -> Call:
    body = {"model": "fake", "input": "hi", "stream": stream}

    async def call(client: httpx.AsyncClient) -> float | None:
        t0 = time.perf_counter()
        if not stream:
            r = await client.post(url + "/v1/responses", json=body)
            assert r.status_code == 200 and r.json()["status"] == "completed", r.text
            return None
        first = None
        async with client.stream("POST", url + "/v1/responses", json=body) as r:
            async for line in r.aiter_lines():
                if first is None and line.startswith("data: ") and "output_text.delta" in line:
                    first = time.perf_counter() - t0
                if line.startswith("data: ") and '"response.completed"' in line:
                    assert json.loads(line[6:])["response"]["status"] == "completed"
        return first

    return call


async def latency(call: Call, n: int) -> tuple[list[float], list[float]]:
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(20):
            await call(client)  # warm-up
        totals, firsts = [], []
        for _ in range(n):
            t0 = time.perf_counter()
            first = await call(client)
            totals.append((time.perf_counter() - t0) * 1000)
            if first is not None:
                firsts.append(first * 1000)
        return totals, firsts


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


async def main(n: int) -> None:
    with fake_upstream() as up, rejoinder(up) as (url, pid):
        cases = [("direct chat completions", direct(up)), ("rejoinder non-stream", via_rejoinder(url, False)),
                 ("rejoinder stream", via_rejoinder(url, True))]
        results = {}
        print(f"{'case':26} {'latency at concurrency 1':36} {'req/s c=16':>10} {'req/s c=64':>10}")
        for name, call in cases:
            totals, firsts = await latency(call, n)
            rps16 = await throughput(call, 16, n)
            rps64 = await throughput(call, 64, n)
            results[name] = (totals, firsts)
            print(f"{name:26} {summary(totals):36} {rps16:10.0f} {rps64:10.0f}")
        d = statistics.median(results["direct chat completions"][0])
        for name in ("rejoinder non-stream", "rejoinder stream"):
            print(f"added p50 latency per stored turn, {name}: {statistics.median(results[name][0]) - d:6.2f} ms")
        first_direct = statistics.median(results["direct chat completions"][1])
        first_rej = statistics.median(results["rejoinder stream"][1])
        print(f"first text delta: direct {first_direct:.2f} ms, via Rejoinder {first_rej:.2f} ms "
              f"(added {first_rej - first_direct:.2f} ms, includes storing the in-progress row)")
        print(f"server RSS after the run: {rss_mb(pid):.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    asyncio.run(main(parser.parse_args().requests))
