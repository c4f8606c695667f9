"""Scale-out benchmark: requests/s with 1 and 2 replicas on PostgreSQL, and stream-resume latency.

Starts real ``rejoinder serve`` processes on a fresh PostgreSQL database (dropped at the end)
against the scripted upstream of the test suite (instant answers, so Rejoinder's own cost and the
database are what is measured), then prints the figures.

    python bench/bench_scale.py [--seconds 10] [--concurrency 16]

``REJOINDER_TEST_POSTGRES`` names the server (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import postgres
from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, ThreadServer, text
from tests.procs import ServeProcess


async def throughput(urls: list[str], seconds: float, concurrency: int) -> float:
    done = 0
    stop = time.monotonic() + seconds

    async def client(i: int) -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=urls[i % len(urls)], timeout=60) as http:
            while time.monotonic() < stop:
                r = await http.post("/v1/responses", json={"model": MODEL, "input": "hello"})
                r.raise_for_status()
                done += 1

    start = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return done / (time.monotonic() - start)


async def first_event_latency(runner: str, follower: str, runs: int) -> tuple[list[float], list[float]]:
    """Per run: time for the other replica to answer a resume with its first event, for a finished
    response (replay) and for a running one (follow)."""
    replay, follow = [], []
    async with httpx.AsyncClient(timeout=60) as http:
        for _ in range(runs):
            r = await http.post(runner + "/v1/responses",
                                json={"model": MODEL, "input": "hello", "background": True})
            response_id = r.json()["id"]
            t0 = time.monotonic()
            async with http.stream("GET", f"{follower}/v1/responses/{response_id}",
                                   params={"stream": "true", "starting_after": 1}) as s:
                async for line in s.aiter_lines():
                    if line.startswith("data:"):
                        follow.append(time.monotonic() - t0)
                        break
            async with http.stream("GET", f"{runner}/v1/responses/{response_id}",
                                   params={"stream": "true"}) as s:
                async for _line in s.aiter_lines():
                    pass  # the stream ends with the terminal event, when the response is stored
            t0 = time.monotonic()
            async with http.stream("GET", f"{follower}/v1/responses/{response_id}",
                                   params={"stream": "true", "starting_after": 0}) as s:
                async for line in s.aiter_lines():
                    if line.startswith("data:"):
                        replay.append(time.monotonic() - t0)
                        break
    return replay, follow


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--resume-runs", type=int, default=20)
    args = parser.parse_args()

    upstream = FakeUpstream()
    upstream.responder = lambda _body: text("a short answer of a few words")
    url = postgres.create_database()
    with ThreadServer(upstream.app) as up, tempfile.TemporaryDirectory() as tmp:
        replicas = [ServeProcess(Path(tmp), url, up.url, f"r{i}", replica_id=f"bench-{i}") for i in range(2)]
        try:
            replicas[0].start()
            asyncio.run(throughput([replicas[0].url], 2, args.concurrency))  # warm up
            one = asyncio.run(throughput([replicas[0].url], args.seconds, args.concurrency))
            replicas[1].start()
            two = asyncio.run(throughput([r.url for r in replicas], args.seconds, args.concurrency))
            latency = first_event_latency(replicas[0].url, replicas[1].url, args.resume_runs)
            replay, follow = asyncio.run(latency)
        finally:
            for r in replicas:
                r.stop()
    postgres.drop_all()
    ms = lambda xs: f"median {statistics.median(xs) * 1000:.1f} ms, max {max(xs) * 1000:.1f} ms"  # noqa: E731
    print(f"PostgreSQL, {args.concurrency} concurrent clients, non-streaming POST /v1/responses:")
    print(f"  1 replica : {one:7.1f} requests/s")
    print(f"  2 replicas: {two:7.1f} requests/s  (x{two / one:.2f}; both replicas share these 2 CPU cores"
          " with the clients, upstream and PostgreSQL)")
    print(f"resume on the other replica, time to first event ({args.resume_runs} runs):")
    print(f"  finished response (replay): {ms(replay)}")
    print(f"  running response (follow) : {ms(follow)}")


if __name__ == "__main__":
    main()
