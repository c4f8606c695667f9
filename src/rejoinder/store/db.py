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
- Short writes on a response's own path (``write(fn, inline=True)``: a turn's start and finish,
  its conversation lock and append) run on the event loop's thread, on a connection of their own
  whose ``BEGIN IMMEDIATE`` never waits: the two thread hops cost more than the ~50 µs
  transaction, and the hops were most of a turn's store time (1.1 ms at p50 on 2 busy vCPUs).
  If another connection holds the write lock, the transaction goes to the writer thread instead,
  which waits on the busy timeout there. That connection never checkpoints on commit (an fsync
  that would block the loop); the writer thread checkpoints after every ``CHECKPOINT_EVERY``
  inline commits. Its transactions are the driver's own (BEGIN/COMMIT on sqlite3, the turn's
  statements from ``prepared.py``): between the rest of a turn's work the caches are cold, and
  SQLAlchemy's begin/execute/commit path doubled a write there (0.67 -> 0.33 ms, driver alone).
- An in-memory database exists once per connection, so there one thread does reads and writes.

PostgreSQL runs the same functions on asyncpg through SQLAlchemy's greenlet bridge
(``AsyncConnection.run_sync``): its statements are network round trips either way.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from rejoinder.store.notify import FALLBACK_SECONDS, Wakeups, take_notes
from rejoinder.store.sqlite_driver import SQLITE, load_vector_extension

T = TypeVar("T")
log = logging.getLogger(__name__)

SQLITE_READERS = 4  # concurrent read transactions; the GIL leaves little to gain from more
CHECKPOINT_EVERY = 200  # inline commits between two WAL checkpoints on the writer thread
SQLITE_BUSY = 5


class _ConnectionThreads:
    """Threads that each hold one connection of ``engine`` and run transaction functions on it."""

    def __init__(self, engine: Engine, threads: int, name: str, *, immediate: bool):
        self._engine = engine
        self._immediate = immediate
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._local = threading.local()
        self._opened: list[Connection] = []
        self._opened_lock = threading.Lock()

    def _transaction(self, fn: Callable[[Connection], T], cancelled: threading.Event) -> tuple[T, list[Any]]:
        """``fn``'s result and the wake-ups it asked for (``notify.py``), once committed."""
        conn = self._connection()
        take_notes(conn)  # a failed transaction's, if any
        with conn.begin() as transaction:
            result = fn(conn)
            if cancelled.is_set():  # the caller is gone: keep nothing, as an awaited transaction would
                transaction.rollback()
                take_notes(conn)
        return result, take_notes(conn)

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._engine.connect().execution_options(rejoinder_immediate=self._immediate)
            with self._opened_lock:
                self._opened.append(conn)
            self._local.conn = conn
        return conn

    async def run_outside_transaction(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` on a thread's connection with no transaction open (a checkpoint)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: fn(self._connection()))

    async def run(self, fn: Callable[[Connection], T]) -> tuple[T, list[Any]]:
        """Run ``fn`` in a transaction on one of the threads; its result and its committed
        wake-ups. Cancelled while queued, it never runs; cancelled while running, it rolls back
        unless it was already committing."""
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


class _InlineWriter:
    """The event loop thread's own write connection; see the module docstring."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._conn: Connection | None = None
        self._raw: Any = None  # the sqlite3 connection under ``_conn``
        self.commits = 0

    def try_run(self, fn: Callable[[Connection], T]) -> tuple[bool, T | None, list[Any]]:
        """(True, result, wake-ups), or (False, None, []) when another connection holds the write lock.

        The transaction is the driver's own: BEGIN and COMMIT on the sqlite3 connection, and the
        turn's statements run there too (``prepared.py``). A statement that goes through
        SQLAlchemy joins it (``_on_begin`` sees it open) and is then committed by SQLAlchemy. On
        the loop, between everything else a turn does, SQLAlchemy's begin/commit path ran with cold
        caches: a turn's insert took 0.67 ms through it, 0.33 ms on the driver alone.
        """
        if self._conn is None:
            self._conn = self._engine.connect().execution_options(rejoinder_immediate=True)
            self._raw = self._conn.connection.driver_connection
            self._raw.execute("PRAGMA busy_timeout=0")
            self._raw.execute("PRAGMA wal_autocheckpoint=0")
        conn, raw = self._conn, self._raw
        try:
            raw.execute("BEGIN IMMEDIATE")
        except SQLITE.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF == SQLITE_BUSY:  # any extended BUSY code
                return False, None, []
            raise
        take_notes(conn)
        try:
            result = fn(conn)
            if conn.in_transaction():
                conn.commit()
            else:
                raw.execute("COMMIT")
        except BaseException:
            # Whatever failed (a statement, or the commit itself), nothing stays open on this
            # connection: the next turn's BEGIN must find it idle.
            if conn.in_transaction():
                conn.rollback()
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise
        self.commits += 1
        return True, result, take_notes(conn)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._engine.dispose()  # its pool holds the driver's connection open until then


def _checkpoint(conn: Connection) -> None:
    """Copy the WAL back into the database file without waiting on readers or writers. A failed
    checkpoint loses nothing (the WAL keeps every commit) and the next one catches up."""
    try:
        conn.connection.dbapi_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
    except SQLITE.Error as exc:
        log.warning("SQLite checkpoint failed: %r", exc)


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
        self._pending: set[asyncio.Future[Any]] = set()
        self._inline: _InlineWriter | None = None
        self.wakeups = Wakeups(FALLBACK_SECONDS["sqlite" if self.is_sqlite else "postgresql"])
        self.sync_engine: Engine  # for event hooks (tests); SQLite's only engine
        if self.is_sqlite:
            in_memory = parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"
            if not in_memory:
                Path(parsed.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
            threads = 1 + (0 if in_memory else SQLITE_READERS)
            self.sync_engine = create_engine(
                parsed.set(drivername="sqlite"), module=SQLITE,
                connect_args={"timeout": 30, "check_same_thread": False},
                **({"poolclass": StaticPool} if in_memory else {"pool_size": threads}),
            )
            self._configure_sqlite(self.sync_engine)
            self._writer = _ConnectionThreads(self.sync_engine, 1, "rejoinder-sqlite-writer", immediate=True)
            self._readers = self._writer if in_memory else _ConnectionThreads(
                self.sync_engine, SQLITE_READERS, "rejoinder-sqlite-reader", immediate=False)
            if not in_memory:  # there the single connection belongs to the writer thread
                inline_engine = create_engine(parsed.set(drivername="sqlite"), module=SQLITE, poolclass=StaticPool,
                                              connect_args={"timeout": 0, "check_same_thread": False})
                self._configure_sqlite(inline_engine)
                self._inline = _InlineWriter(inline_engine)
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
            load_vector_extension(dbapi_conn)  # vector stores rank with sqlite-vec's functions

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            if conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
                return  # begun on the driver (``_InlineWriter``): the statement joins it
            immediate = conn.get_execution_options().get("rejoinder_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    async def write(self, fn: Callable[[Connection], T], *, inline: bool = False) -> T:
        """Run ``fn`` in a write transaction and return its result. ``inline``: a short write on a
        response's own path, run on the event loop's thread when SQLite's write lock is free (a
        large payload is never inline: its caller says so, see ``responses.py``).

        The wake-ups ``fn`` asked for (``notify.notify``) reach this process's waiters once the
        transaction has committed; on PostgreSQL, ``pg_notify`` delivers them at the commit."""
        if self._async_engine is None:
            if inline and self._inline is not None:
                done, result, notes = self._inline.try_run(fn)
                if done:
                    if self._inline.commits % CHECKPOINT_EVERY == 0:
                        self._checkpoint_soon()
                    self._wake(notes)
                    return result  # type: ignore[return-value]
            written, notes = await self._writer.run(fn)
            self._wake(notes)
            return written
        async with self._async_engine.begin() as conn:
            return await conn.run_sync(fn)

    def _wake(self, notes: list[tuple[str, str]]) -> None:
        for channel, key in notes:
            self.wakeups.wake(channel, key)

    def _checkpoint_soon(self) -> None:
        task = asyncio.ensure_future(self._writer.run_outside_transaction(_checkpoint))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a transaction that only reads (one snapshot for all its statements)."""
        if self._async_engine is None:
            result, _ = await self._readers.run(fn)
            return result
        async with self._async_engine.begin() as conn:
            return await conn.run_sync(fn)

    async def dispose(self) -> None:
        """Let queued transactions finish, then close every connection and thread."""
        if self._async_engine is not None:
            await self._async_engine.dispose()
            return

        if self._pending:
            await asyncio.wait(set(self._pending))

        def close() -> None:
            if self._inline is not None:
                self._inline.close()
            self._writer.close()
            self._readers.close()
            self.sync_engine.dispose()

        await asyncio.to_thread(close)
