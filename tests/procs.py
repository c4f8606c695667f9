"""Real ``rejoinder serve`` processes for multi-replica and crash tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
from sqlalchemy import text

from rejoinder.store.db import Database
from tests.conftest import MODEL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    def __init__(self, tmp: Path, storage_url: str, upstream_url: str, name: str, *,
                 env: dict[str, str] | None = None, log_level: str = "warning", args: tuple[str, ...] = (),
                 **settings: Any):
        self.tmp = tmp
        self.name = name
        self.extra_env = env or {}  # e.g. REJOINDER_LOG_FORMAT, OTEL_* (the process gets no other REJOINDER_*)
        self.log_level = log_level
        self.args = args
        self.port = free_port()
        self.config = tmp / f"{name}.json"
        self.config.write_text(json.dumps({
            "storage_url": storage_url,
            "data_dir": str(tmp / name),
            "models": {MODEL: {"base_url": upstream_url + "/v1", "api_key": "k"}},
            "embedded": {"enabled": "off"},
            **settings,
        }))
        self.log_path = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key="x", max_retries=0, timeout=30)

    def start(self) -> ServeProcess:
        self.launch()
        return self.wait_ready()

    def launch(self) -> ServeProcess:
        """Start the process without waiting for it to serve (``wait_ready``)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REJOINDER_", "OTEL_"))}
        env.update(self.extra_env)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rejoinder", "serve", "--config", str(self.config),
             "--port", str(self.port),
             "--log-level", self.log_level, *self.args], stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def wait_ready(self) -> ServeProcess:
        """Wait until this process serves /health on its port. The port was only free when it was
        picked: another process on the machine may take it first, answering /health for us while
        ours fails to bind. So the listening socket must belong to our process (or its workers),
        and a process that lost its port is relaunched on a new one."""
        assert self.proc is not None
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                log = self.log_path.read_text()
                if "address already in use" in log.lower() and time.monotonic() < deadline:
                    self.port = free_port()
                    self.launch()
                    continue
                raise RuntimeError(f"{self.name} exited: {log[-2000:]}")
            try:
                if self._listening() and httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def _listening(self) -> bool:
        """Whether our process (or a worker it started) holds the listening socket on our port."""
        assert self.proc is not None
        try:
            root = psutil.Process(self.proc.pid)
            for proc in [root, *root.children(recursive=True)]:
                for conn in proc.net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == self.port:
                        return True
        except psutil.Error:
            return False
        return False

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, exactly like a crashed machine."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_together(*procs: ServeProcess) -> None:
    """Start replicas side by side: most of a start is Python importing, one core each."""
    for proc in procs:
        proc.launch()
    for proc in procs:
        proc.wait_ready()


def query(storage_url: str, sql: str, **params: Any) -> list[Any]:
    """Read the database the servers share, as an operator would (through Rejoinder's own
    ``Database``, which knows each URL's driver)."""

    async def run() -> list[Any]:
        db = Database(storage_url)
        try:
            return await db.read(lambda conn: list(conn.execute(text(sql), params).all()))
        finally:
            await db.dispose()

    return asyncio.run(run())


def wait_status(client: openai.OpenAI, response_id: str, statuses: tuple[str, ...],
                timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        r = client.responses.retrieve(response_id)
        if r.status in statuses:
            return r
        if time.monotonic() > deadline:
            raise AssertionError(f"{response_id} is still {r.status}")
        time.sleep(0.1)
