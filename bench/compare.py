"""Interleaved A/B of two versions of Rejoinder: how much latency a change adds or removes.

    python -m bench.compare BASE [NEW] [--requests 3000] [--servers 4] [--modes nonstream,stream]

BASE and NEW are git refs of this repository (exported with ``git archive``) or paths to ``src``
trees; NEW defaults to the working tree. Both run as real ``rejoinder serve`` processes on one
fake upstream (bench.common), with ``--servers`` processes per side, started alternately: on these
VMs a process's speed depends on its memory layout by a few percent, and one process per side
showed biases of 0.05 ms either way. Each round calls the upstream directly, then each mode on
both sides, the side that goes first alternating, so a drift of the machine weighs on both alike.
It prints each side's added p50 over direct, and the median of the per-round differences NEW -
BASE with a bootstrap 95% interval.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.bench_core import Call, direct, via_rejoinder
from bench.common import ROOT, fake_upstream, rejoinder


def source_tree(ref: str, scratch: Path) -> str:
    """A ``src`` directory for ``ref``: a path as given, or a git ref exported under ``scratch``."""
    if Path(ref).is_dir():
        return str(Path(ref).resolve())
    out = scratch / ref.replace("/", "_")
    out.mkdir()
    archive = subprocess.run(["git", "archive", ref, "src"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return str(out / "src")


def interval(diffs: list[float]) -> tuple[float, float]:
    medians = sorted(statistics.median(random.choices(diffs, k=len(diffs))) for _ in range(400))
    return medians[10], medians[-11]


async def compare(trees: dict[str, str], requests: int, servers: int, modes: list[str]) -> None:
    with fake_upstream() as up, ExitStack() as stack:
        urls: dict[str, list[str]] = {side: [] for side in trees}
        for i in range(servers):
            for side in (list(trees) if i % 2 == 0 else list(reversed(trees))):
                os.environ["PYTHONPATH"] = trees[side]  # the server imports rejoinder from this tree
                url, _ = stack.enter_context(rejoinder(up))
                urls[side].append(url)
        os.environ.pop("PYTHONPATH")
        clients: list[httpx.AsyncClient] = []

        def client() -> httpx.AsyncClient:
            clients.append(httpx.AsyncClient(timeout=60))
            return clients[-1]

        baseline = (direct(up), client())
        calls: dict[tuple[str, str, int], tuple[Call, httpx.AsyncClient]] = {
            (side, mode, i): (via_rejoinder(urls[side][i], mode == "stream"), client())
            for side in trees for mode in modes for i in range(servers)}
        try:
            for call, c in [baseline, *calls.values()] * 10:  # warm-up
                await call(c)
            times: dict[tuple[str, str], list[float]] = {(side, mode): [] for side in trees for mode in modes}
            direct_ms = []
            for r in range(requests):
                t0 = time.perf_counter()
                await baseline[0](baseline[1])
                direct_ms.append((time.perf_counter() - t0) * 1000)
                for mode in modes:
                    for side in (list(trees) if (r // servers) % 2 == 0 else list(reversed(trees))):
                        call, c = calls[(side, mode, r % servers)]
                        t0 = time.perf_counter()
                        await call(c)
                        times[(side, mode)].append((time.perf_counter() - t0) * 1000)
        finally:
            for c in clients:
                await c.aclose()
    base = statistics.median(direct_ms)
    print(f"direct p50 {base:.2f} ms; {servers} servers per side; {requests} rounds")
    for mode in modes:
        old, new = times[("base", mode)], times[("new", mode)]
        diffs = [b - a for a, b in zip(old, new, strict=True)]
        lo, hi = interval(diffs)
        print(f"{mode:10} added p50: base {statistics.median(old) - base:+.3f} ms, new "
              f"{statistics.median(new) - base:+.3f} ms; new - base {statistics.median(diffs):+.3f} ms "
              f"[{lo:+.3f}, {hi:+.3f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base")
    parser.add_argument("new", nargs="?", default=str(ROOT / "src"))
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--modes", default="nonstream,stream")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        trees = {"base": source_tree(args.base, Path(scratch)), "new": source_tree(args.new, Path(scratch))}
        asyncio.run(compare(trees, args.requests, args.servers, args.modes.split(",")))


if __name__ == "__main__":
    main()
