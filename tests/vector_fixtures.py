"""Fixtures for the vector store tests: servers on SQLite, or on a PostgreSQL with pgvector.

In the suite's PostgreSQL pass (``REJOINDER_TEST_STORAGE_URL=postgresql://...``) the servers get a
database on a pgvector server (``tests/pgvector.py``); otherwise SQLite. The embedded MiniLM is
converted once into a directory every server of the session shares.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests import pgvector

KEYS = {"key-alice": "alice", "key-bob": "bob"}


def on_postgres() -> bool:
    return (os.environ.get("REJOINDER_TEST_STORAGE_URL") or "").startswith("postgres")


def vector_storage_url(tmp: Path) -> str:
    return pgvector.create_database() if on_postgres() else f"sqlite:///{tmp / 'vectors.db'}"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def make_vs_server(make_server: Callable[..., Any], tmp_path: Path, model_dir: Path) -> Callable[..., Any]:
    def make(**overrides: Any) -> Any:
        settings = {"storage_url": vector_storage_url(tmp_path), "data_dir": model_dir, "api_keys": KEYS}
        return make_server(**{**settings, **overrides})

    return make


@pytest.fixture
def vs_server(make_vs_server: Callable[..., Any]) -> Any:
    return make_vs_server()


def client(server: Any, key: str = "key-alice") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=120)


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (the background work it waits on has no
    event a test could join)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
