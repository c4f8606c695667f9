"""``rejoinder config``, ``check`` and ``migrate``, run as an operator runs them, and metrics summed
over processes (``PROMETHEUS_MULTIPROC_DIR``, as ``serve --workers`` sets it up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream
from tests.procs import ServeProcess, free_port, start_together
from tests.test_metrics import scrape, value

UPSTREAM_KEY = "sk-upstream-secret-0123456789"
CLIENT_KEY = "sk-client-key-abcdefghijkl"


def rejoinder(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REJOINDER_", "OTEL_", "PROMETHEUS_"))}
    return subprocess.run([sys.executable, "-m", "rejoinder", *args], capture_output=True, text=True,
                          env={**clean, **(env or {})}, timeout=120)


def write_config(tmp_path: Path, **settings: Any) -> Path:
    path = tmp_path / "rejoinder.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "embedded": {"enabled": "off"}, **settings}))
    return path


def test_config_masks_secrets(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, models={"gpt": {"base_url": "https://api.example/v1", "api_key": UPSTREAM_KEY}},
        api_keys={CLIENT_KEY: "team-a", "tiny": "team-b"},
        storage_url="postgresql+asyncpg://rejoinder:hunter2-password@db:5432/rejoinder")
    out = rejoinder("config", "--config", str(config), env={"REJOINDER_LOG_FORMAT": "json"})
    assert out.returncode == 0, out.stderr
    for secret in (UPSTREAM_KEY, CLIENT_KEY, "hunter2-password", "tiny"):
        assert secret not in out.stdout
    shown = yaml.safe_load(out.stdout)
    assert shown["models"]["gpt"]["api_key"] == "sk-...6789"
    assert sorted(shown["api_keys"].values()) == ["team-a", "team-b"]
    assert shown["storage_url"] == "postgresql+asyncpg://rejoinder:***@db:5432/rejoinder"
    assert shown["log_format"] == "json"  # the environment wins over the file
    assert shown["observability"]["tracing"].startswith("off")

    traced = rejoinder("config", "--config", str(config), "--format", "json",
                       env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SERVICE_NAME": "rj"})
    tracing = json.loads(traced.stdout)["observability"]["tracing"]
    assert tracing == {"endpoint": "http://collector:4318", "protocol": "http/protobuf", "service_name": "rj"}


def test_check_reports_models_and_context_windows(tmp_path: Path, upstream: FakeUpstream) -> None:
    base = upstream.url + "/v1"  # type: ignore[attr-defined]
    upstream.info["/v1/models"] = {"object": "list", "data": [  # as vLLM lists them, with its context window
        {"id": MODEL, "object": "model", "owned_by": "fake", "max_model_len": 8192}]}
    good = write_config(tmp_path, models={MODEL: {"base_url": base, "api_key": UPSTREAM_KEY}})
    out = rejoinder("check", "--config", str(good), "--format", "json")
    assert out.returncode == 0, out.stdout + out.stderr
    [report] = json.loads(out.stdout)
    assert report == {"model": MODEL, "base_url": base, "upstream_model": MODEL, "served_models": [MODEL],
                      "context_window": 8192, "context_window_source": "vLLM GET /v1/models (max_model_len)",
                      "ok": True}

    bad = write_config(tmp_path, models={
        MODEL: {"base_url": base},
        "renamed": {"base_url": base, "model": "not-served"},
        "gone": {"base_url": f"http://127.0.0.1:{free_port()}/v1"},
    })
    out = rejoinder("check", "--config", str(bad))
    assert out.returncode == 1
    lines = out.stdout
    assert f"ok   {MODEL}: {MODEL} at {base}; context window 8192 (vLLM GET /v1/models (max_model_len))" in lines
    assert "FAIL renamed: not-served" in lines and "the backend does not list 'not-served'" in lines
    assert "FAIL gone:" in lines and "cannot reach" in lines
    assert UPSTREAM_KEY not in lines


def test_migrate_alone(tmp_path: Path) -> None:
    config = write_config(tmp_path, storage_url=f"sqlite:///{tmp_path / 'fresh.db'}")
    first = rejoinder("migrate", "--config", str(config))
    assert first.returncode == 0, first.stderr
    from rejoinder.store.schema import LATEST_VERSION

    assert first.stdout.strip().endswith(f"schema version (empty) -> {LATEST_VERSION}")
    again = rejoinder("migrate", "--config", str(config))
    assert again.stdout.strip().endswith(f"schema version {LATEST_VERSION}, nothing to do")
    import sqlite3

    with sqlite3.connect(tmp_path / "fresh.db") as db:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type = 'table'")}
    assert {"responses", "conversations", "schema_version"} <= tables


def test_metrics_summed_across_processes(tmp_path: Path, upstream: FakeUpstream) -> None:
    """Two processes sharing PROMETHEUS_MULTIPROC_DIR: either one's /metrics counts both."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    storage = f"sqlite:///{tmp_path / 'r.db'}"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    a = ServeProcess(tmp_path, storage, upstream.url, "a", env=env)
    b = ServeProcess(tmp_path, storage, upstream.url, "b", env=env)
    start_together(a, b)
    try:
        for proc, n in ((a, 3), (b, 2)):
            for _ in range(n):
                r = httpx.post(proc.url + "/v1/responses", json={"model": MODEL, "input": "hi"}, timeout=30)
                assert r.json()["status"] == "completed"
        for proc in (a, b):
            s = scrape(proc.url)
            assert value(s, "rejoinder_responses_total", model=MODEL, status="completed") == 5
            assert value(s, "rejoinder_http_request_duration_seconds_count", method="POST", route="/v1/responses",
                         status="200") == 5
    finally:
        a.stop()
        b.stop()


def test_serve_workers(tmp_path: Path, upstream: FakeUpstream) -> None:
    proc = ServeProcess(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", upstream.url, "workers", args=("--workers", "2"))
    proc.start()
    try:
        for _ in range(6):
            with httpx.Client() as client:  # a connection each: the workers share the port
                r = client.post(proc.url + "/v1/responses", json={"model": MODEL, "input": "hi"}, timeout=30)
                assert r.json()["status"] == "completed"
        s = scrape(proc.url)
        assert value(s, "rejoinder_responses_total", model=MODEL, status="completed") == 6
    finally:
        proc.stop()
