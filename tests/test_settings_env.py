"""Every settings form the README documents starts the real server (``python -m rejoinder serve``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import MODEL
from tests.procs import free_port


class EnvServer:
    """``rejoinder serve`` configured by environment variables alone (and, optionally, a file)."""

    def __init__(self, tmp: Path, env: dict[str, str], args: tuple[str, ...] = ()):
        self.port = free_port()
        self.log = tmp / f"serve-{self.port}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("REJOINDER_")}
        env = {"REJOINDER_PORT": str(self.port), "REJOINDER_HOST": "127.0.0.1", **env}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "rejoinder", "serve", "--log-level", "warning", *args],
                                         env={**base, **env}, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[type[EnvServer]]:
    started: list[EnvServer] = []

    def start(env: dict[str, str], args: tuple[str, ...] = ()) -> EnvServer:
        server = EnvServer(tmp_path, env, args)
        started.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in started:
        server.stop()


def _create(server: EnvServer, model: str, key: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.url + "/v1/responses", json={"model": model, "input": "hi"}, headers=headers, timeout=30)


def test_the_quick_environment_forms(serve, tmp_path, upstream):
    """REJOINDER_API_KEYS=key1:alice,key2:bob (the README's own form), one backend from
    REJOINDER_BACKEND_*, storage, recording, host and port, nested keys with __."""
    recordings = tmp_path / "recs"
    server = serve({
        "REJOINDER_API_KEYS": "key1:alice,key2:bob",
        "REJOINDER_BACKEND_URL": upstream.url + "/v1",
        "REJOINDER_BACKEND_API_KEY": "upstream-key",
        "REJOINDER_BACKEND_MODELS": f"a,b={MODEL}",
        "REJOINDER_STORAGE_URL": f"sqlite:///{tmp_path / 'env.db'}",
        "REJOINDER_RECORDING__MODE": "record",
        "REJOINDER_RECORDING__DIR": str(recordings),
        "REJOINDER_EMBEDDED__ENABLED": "off",
    })
    assert _create(server, "a", None).status_code == 401
    alice = _create(server, "b", "key1")
    assert alice.status_code == 200, alice.text
    assert upstream.requests[-1]["model"] == MODEL  # b=upstream name
    rid = alice.json()["id"]
    headers = {"authorization": "Bearer key2"}
    assert httpx.get(f"{server.url}/v1/responses/{rid}", headers=headers).status_code == 404  # bob's view
    assert httpx.get(f"{server.url}/v1/responses/{rid}", headers={"authorization": "Bearer key1"}).status_code == 200
    models = httpx.get(server.url + "/v1/models", headers=headers).json()["data"]
    assert [m["id"] for m in models] == ["a", "b"]
    assert list(recordings.glob("*.json")) and (tmp_path / "env.db").exists()


def test_the_json_forms_and_a_config_file(serve, tmp_path, upstream):
    """REJOINDER_MODELS and REJOINDER_API_KEYS as JSON, REJOINDER_DATA_DIR, and a YAML file that
    the environment overrides."""
    config = tmp_path / "rejoinder.yaml"
    config.write_text(f"models:\n  from-file:\n    base_url: {upstream.url}/v1\nembedded: {{enabled: 'off'}}\n"
                      "api_keys: {file-key: carol}\nmax_tool_iterations: 3\n")
    server = serve({
        "REJOINDER_MODELS": json.dumps({"from-env": {"base_url": upstream.url + "/v1", "model": MODEL}}),
        "REJOINDER_API_KEYS": json.dumps({"sk-team-a": "team-a"}),
        "REJOINDER_DATA_DIR": str(tmp_path / "data"),
    }, ("--config", str(config)))
    assert _create(server, "from-env", "sk-team-a").status_code == 200
    assert _create(server, "from-env", "file-key").status_code == 401  # the environment wins over the file
    assert (tmp_path / "data" / "rejoinder.db").exists()


def test_a_toml_config_file_alone(serve, tmp_path, upstream):
    config = tmp_path / "rejoinder.toml"
    config.write_text(f'storage_url = "sqlite:///{tmp_path / "t.db"}"\n'
                      f'[models.toml-model]\nbase_url = "{upstream.url}/v1"\nmodel = "{MODEL}"\n'
                      '[embedded]\nenabled = "off"\n[api_keys]\nsk-x = "xavier"\n')
    server = serve({}, ("--config", str(config)))
    assert _create(server, "toml-model", "sk-x").status_code == 200
    assert (tmp_path / "t.db").exists()
