"""Fixtures: a scripted upstream and Rejoinder servers on loopback, driven by the official openai client."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from rejoinder.config import Settings
from rejoinder.http.app import create_app
from rejoinder.tools.registry import BUILTIN, ToolKinds
from tests import postgres
from tests.fake_upstream import FakeUpstream, ThreadServer

MODEL = "fake-model"

pytest_plugins = ["tests.mcp_server",  # mcp_server, mcp_sse_server, mcp_log fixtures
                  "tests.vector_fixtures"]  # make_vs_server, vs_server


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    with ThreadServer(fake.app) as server:
        fake.url = server.url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture(autouse=True)
def _reset_upstream(request: pytest.FixtureRequest) -> None:
    if "upstream" in request.fixturenames:
        request.getfixturevalue("upstream").reset()


def storage_url(tmp_path: Path) -> str:
    """SQLite in ``tmp_path``; with a PostgreSQL ``REJOINDER_TEST_STORAGE_URL``, a fresh database on
    that server (one per call, so servers never see each other's rows)."""
    configured = os.environ.get("REJOINDER_TEST_STORAGE_URL")
    if configured and configured.startswith("postgres"):
        return postgres.create_database()
    return configured or f"sqlite:///{tmp_path / 'rejoinder.db'}"


_sqlite_template: list[Path] = []  # one migrated SQLite file per session, copied for each server


def migrated_sqlite(tmp: Path) -> str:
    """A migrated SQLite database in ``tmp``: a copy of one migrated once (migrating a new file is
    most of a test server's start)."""
    import shutil

    from rejoinder.store.db import Database
    from rejoinder.store.migrations import migrate

    if not _sqlite_template:
        import tempfile

        template = Path(tempfile.mkdtemp(prefix="rejoinder-template-")) / "rejoinder.db"

        async def build() -> None:
            db = Database(f"sqlite:///{template}")
            try:
                await migrate(db)
            finally:
                await db.dispose()

        postgres._run(build())
        _sqlite_template.append(template)
    target = tmp / "rejoinder.db"
    for suffix in ("", "-wal"):  # the log too, should closing have left one
        if Path(f"{_sqlite_template[0]}{suffix}").exists():
            shutil.copyfile(f"{_sqlite_template[0]}{suffix}", f"{target}{suffix}")
    return f"sqlite:///{target}"


@pytest.fixture
def pg_url() -> str:
    """A fresh PostgreSQL database, whatever the suite's storage; skipped if PostgreSQL is not
    running, unless REJOINDER_REQUIRE_POSTGRES=1 (CI), where that is a failure."""
    try:
        return postgres.create_database()
    except postgres.PostgresUnavailable as exc:
        if postgres.required():
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture
def shared_storage_url(tmp_path: Path) -> str:
    """One database for several servers (replicas) on the suite's storage backend."""
    return storage_url(tmp_path)


@pytest.fixture
def make_server(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Callable[..., Any]]:
    """Start a Rejoinder server; keyword arguments override its settings (``tools``: the tool kinds served)."""
    started: list[ThreadServer] = []
    reused: list[str] = []  # PostgreSQL databases to empty for the next test once the servers stopped

    def make(tools: ToolKinds | None = None, **overrides: Any) -> ThreadServer:
        tmp = tmp_path_factory.mktemp("rejoinder")
        if overrides.get("storage_url") is not None:
            url = overrides["storage_url"]
        elif (os.environ.get("REJOINDER_TEST_STORAGE_URL") or "").startswith("postgres"):
            url = postgres.reusable_database()
            reused.append(url)
        elif os.environ.get("REJOINDER_TEST_STORAGE_URL"):
            url = storage_url(tmp)
        else:
            url = migrated_sqlite(tmp)
        defaults: dict[str, Any] = {
            "data_dir": tmp,
            "storage_url": url,
            "models": {MODEL: {"base_url": upstream.url + "/v1", "api_key": "upstream-key"}},  # type: ignore[attr-defined]
            "embedded": {"enabled": "off"},
        }
        settings = Settings(**{**defaults, **{k: v for k, v in overrides.items() if v is not None}})
        server = ThreadServer(create_app(settings, tools or BUILTIN)).__enter__()
        started.append(server)
        return server

    yield make
    for server in started:  # side by side: a test's replicas stop in the time of one
        server.stop_soon()
    for server in started:
        server.join()
    for url in reused:
        postgres.give_back(url)


@pytest.fixture
def server(make_server: Callable[..., ThreadServer]) -> ThreadServer:
    return make_server()


@pytest.fixture
def client(server: ThreadServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="test", max_retries=0, timeout=30)
