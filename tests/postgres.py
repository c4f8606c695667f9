"""Fresh PostgreSQL databases for tests, so parallel runs and other sessions never share one.

``REJOINDER_TEST_POSTGRES`` (or a PostgreSQL ``REJOINDER_TEST_STORAGE_URL``) names the server and a
maintenance database to connect to (default ``postgresql://postgres@127.0.0.1:5432/test``); no
test writes there: each server gets a database of its own, dropped at exit. With
``REJOINDER_REQUIRE_POSTGRES=1`` (CI) an unreachable server fails the tests instead of skipping.
Servers that ``make_server`` starts reuse databases, emptied once their servers stopped.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import secrets
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

DEFAULT_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
_created: list[str] = []


class PostgresUnavailable(RuntimeError):
    pass


def admin_url() -> str:
    storage = os.environ.get("REJOINDER_TEST_STORAGE_URL") or ""
    url = make_url(os.environ.get("REJOINDER_TEST_POSTGRES")
                   or (storage if storage.startswith("postgres") else DEFAULT_ADMIN))
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def required() -> bool:
    return os.environ.get("REJOINDER_REQUIRE_POSTGRES") == "1"


async def _execute(sql: str) -> None:
    try:
        conn = await asyncpg.connect(admin_url(), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise PostgresUnavailable(f"PostgreSQL at {admin_url()} is unreachable: {exc}") from exc
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run(coro: Any) -> Any:
    """``asyncio.run``, from a thread of its own when this one runs an event loop already
    (Playwright's sync API keeps one running in the browser tests' thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def create_database() -> str:
    """A new empty database; returns its SQLAlchemy URL (asyncpg driver)."""
    name = f"rejoinder_t_{os.getpid()}_{secrets.token_hex(4)}"
    _run(_execute(f'CREATE DATABASE "{name}"'))
    _created.append(name)
    return make_url(admin_url()).set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False)


_free: list[str] = []  # emptied databases, migrated, ready for the next server


def reusable_database() -> str:
    """A database no running server uses: an emptied one (``give_back``), else a new one. Creating,
    migrating and dropping one took ~2 s a server; emptying one ~0.03 s."""
    return _free.pop() if _free else create_database()


async def _empty(url: str) -> None:
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                                 timeout=5)
    try:
        # A server that did not stop in time must not keep rows or locks for the next one.
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        tables = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_version'")]
        # DELETE, not TRUNCATE: a test leaves few rows, and TRUNCATE makes new files for every table
        # and index (0.25 s against 0.03 s). Foreign keys are not checked (replica role): any order.
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '5s'; SET LOCAL session_replication_role = replica")
            for table in tables:
                await conn.execute(f'DELETE FROM "{table}"')
            await conn.execute("SELECT setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n"
                               " ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND n.nspname = 'public'")
    finally:
        await conn.close()


def give_back(url: str) -> None:
    """Empty a database whose servers have all stopped (its schema stays) for ``reusable_database``;
    if it cannot be emptied it is left to ``drop_all``."""
    try:
        _run(_empty(url))
    except Exception as exc:
        print(f"could not empty test database {url}: {exc}")
        return
    _free.append(url)


def drop_all() -> None:
    while _created:
        name = _created.pop()
        try:
            _run(_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as exc:  # the server went away: nothing left to clean
            print(f"could not drop test database {name}: {exc}")


atexit.register(drop_all)
