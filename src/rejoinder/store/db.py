"""The database: every store operation is one synchronous transaction function, run by ``Database``.

SQLite runs on plain threads with the synchronous pysqlite driver. Through aiosqlite each statement,
BEGIN, COMMIT and the pool's reset-on-return is a separate hop to its thread plus greenlet switches:
``ResponseStore.create`` took 1.4 ms at p50, ``finish`` 1.9 ms, ``get`` 1.6 ms (2 vCPU). Run whole
on a thread, one hop per transaction, the same calls take 0.55, 0.75 and 0.65 ms.

- Writes go to one dedicated writer thread, which serialises them in this process (no lock needed);
  each starts with ``BEGIN IMMEDIATE``, so other processes on the file wait on the busy timeout
  rather than fail with "database is locked" when a read transaction tries to upgrade.
- Reads go to a few reader threads (WAL lets them run beside the writer); each starts with a
  deferred ``BEGIN`` so its statements share one snapshot. Reads through aiosqlite, even as one
  ``run_sync`` call, still hop per statement: ``get`` stayed at 1.3 ms.
- Every thread holds one connection for its life: no pool checkout or reset per transaction
  (0.05 ms a call).
- An in-memory database exists once per connection, so there one thread does reads and writes.

PostgreSQL runs the same functions on asyncpg through SQLAlchemy's greenlet bridge
(``AsyncConnection.run_sync``): its statements are network round trips either way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

T = TypeVar("T")

SQLITE_READERS = 4  # concurrent read transactions; the GIL leaves little to gain from more


class _ConnectionThreads:
    """Threads that each hold one connection of ``engine`` and run transaction functions on it."""

    def __init__(self, engine: Engine, threads: int, name: str, *, immediate: bool):
        self._engine = engine
        self._immediate = immediate
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._local = threading.local()
        self._opened: list[Connection] = []
        self._opened_lock = threading.Lock()

    def _transaction(self, fn: Callable[[Connection], T], cancelled: threading.Event) -> T:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._engine.connect().execution_options(rejoinder_immediate=self._immediate)
            with self._opened_lock:
                self._opened.append(conn)
            self._local.conn = conn
        with conn.begin() as transaction:
            result = fn(conn)
            if cancelled.is_set():  # the caller is gone: keep nothing, as an awaited transaction would
                transaction.rollback()
            return result

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a transaction on one of the threads. Cancelled while queued, it never runs;
        cancelled while running, it rolls back unless it was already committing."""
        cancelled = threading.Event()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, fn, cancelled)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def close(self) -> None:
        """Finish queued transactions, then close the connections (the threads are idle by then)."""
        self._executor.shutdown(wait=True)
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()


class Database:
    """Runs transaction functions: ``await db.write(fn)`` / ``await db.read(fn)`` call ``fn(conn)``
    with a ``sqlalchemy.Connection`` inside one transaction and return its result. An exception
    from ``fn`` rolls the transaction back and propagates unchanged. ``fn`` must not await or
    call back into the ``Database`` (on SQLite it runs on the single writer thread)."""

    def __init__(self, url: str):
        parsed = make_url(url)
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.is_postgres = parsed.get_backend_name() == "postgresql"
        self._async_engine: AsyncEngine | None = None
        self.sync_engine: Engine  # for event hooks (tests); SQLite's only engine
        if self.is_sqlite:
            in_memory = parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"
            if not in_memory:
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            threads = 1 + (0 if in_memory else SQLITE_READERS)
            self.sync_engine = create_engine(
                parsed.set(drivername="sqlite"),
                connect_args={"timeout": 30, "check_same_thread": False},
                **({"poolclass": StaticPool} if in_memory else {"pool_size": threads}),
            )
            self._configure_sqlite(self.sync_engine)
            self._writer = _ConnectionThreads(self.sync_engine, 1, "rejoinder-sqlite-writer", immediate=True)
            self._readers = self._writer if in_memory else _ConnectionThreads(
                self.sync_engine, SQLITE_READERS, "rejoinder-sqlite-reader", immediate=False)
        else:
            self._async_engine = create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
            self.sync_engine = self._async_engine.sync_engine

    @staticmethod
    def _configure_sqlite(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("rejoinder_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a write transaction and return its result."""
        if self._async_engine is None:
            return await self._writer.run(fn)
        async with self._async_engine.begin() as conn:
            return await conn.run_sync(fn)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a transaction that only reads (one snapshot for all its statements)."""
        if self._async_engine is None:
            return await self._readers.run(fn)
        async with self._async_engine.begin() as conn:
            return await conn.run_sync(fn)

    async def dispose(self) -> None:
        """Let queued transactions finish, then close every connection and thread."""
        if self._async_engine is not None:
            await self._async_engine.dispose()
            return

        def close() -> None:
            self._writer.close()
            self._readers.close()
            self.sync_engine.dispose()

        await asyncio.to_thread(close)
