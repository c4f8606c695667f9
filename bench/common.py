"""Process helpers shared by the benchmarks: a fake upstream and Rejoinder servers as real processes."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def scripted_upstream(setup: str) -> Iterator[str]:
    """The scripted fake upstream (tests/fake_upstream.py) in a process of its own, answering as
    ``setup`` says: code run after ``f = FakeUpstream()`` that sets ``f.responder`` (it may import
    from ``tests.fake_upstream``). Yields its URL."""
    port = free_port()
    code = ("import uvicorn\nfrom tests.fake_upstream import FakeUpstream\nf = FakeUpstream()\n" + setup
            + f"uvicorn.run(f.app, host='127.0.0.1', port={port}, log_level='warning')\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url + "/docs")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def fake_upstream(words: int = 20, delay: float = 0.0) -> Iterator[str]:
    """The scripted fake upstream answering every call with ``words`` words, ``delay`` seconds
    before each chunk.

    Every word is the send time of its chunk (``STAMP``), so a client can tell how long each chunk
    took to reach it, directly or through Rejoinder.
    """
    with scripted_upstream(
        "from tests.fake_upstream import STAMP, text\n"
        f"words = ' '.join([STAMP.decode()] * {words})\n"
        f"f.responder = lambda body: (f.requests.clear(), text(words, delay={delay}))[1]\n"
    ) as url:
        yield url


@contextmanager
def _server(args: list[str], port: int, health: str = "/health") -> Iterator[tuple[str, int]]:
    """A Python process serving on ``port``, up once ``health`` answers; yields (url, pid)."""
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url + health)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(15)


def passthrough(upstream_url: str) -> AbstractContextManager[tuple[str, int]]:
    """The floor: ``bench/passthrough.py`` in front of the upstream; yields (url, pid)."""
    port = free_port()
    return _server(["-m", "bench.passthrough", upstream_url, str(port)], port)


def rejoinder(upstream_url: str, storage_url: str | None = None, extra: dict[str, Any] | None = None,
              port: int | None = None) -> AbstractContextManager[tuple[str, int]]:
    """A ``rejoinder serve`` process with one model ``fake`` on the upstream; yields (url, pid)."""
    port = port or free_port()
    tmp = tempfile.mkdtemp()
    config = {"models": {"fake": {"base_url": upstream_url + "/v1"}}, "embedded": {"enabled": "off"},
              "data_dir": tmp, **(extra or {})}
    if storage_url:
        config["storage_url"] = storage_url
    cfg = Path(tmp) / "config.json"
    cfg.write_text(json.dumps(config))
    return _server(["-m", "rejoinder", "serve", "--port", str(port), "--config", str(cfg), "--log-level", "warning"],
                   port)


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def summary(values: list[float]) -> str:
    return f"p50 {statistics.median(values):7.2f} ms  p99 {pct(values, 0.99):7.2f} ms"
