"""Wake-ups: a commit that others wait for wakes them, instead of them polling the database.

Three things are waited for: a background response's new events or its end (its followers, on
any replica), a cancel (the replica running the response), and a queued job (a replica with a free
slot). A write transaction that changes one of them calls ``notify(conn, channel, key)``:

- On PostgreSQL that is ``pg_notify`` inside the transaction, delivered to every replica when it
  commits (and never if it rolls back). Each replica LISTENs on one dedicated asyncpg connection
  (``PostgresListener``), reconnects when it is lost, and then wakes every waiter, since anything
  may have happened while it was deaf.
- On SQLite the note is kept on the connection and handed to this process's ``Wakeups`` once the
  transaction has committed (``Database.write``).

A wake-up is a hint to look again, never the news itself: every waiter re-reads what it waits for.
So a missed or spurious wake-up costs at most a wait until the fallback poll
(``Wakeups.fallback_seconds``): long on PostgreSQL, where nothing should be missed; one second on
SQLite, where another process writing the same file is heard of only that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

EVENTS = "rejoinder_events"  # key: a background response that stored events or ended
CANCEL = "rejoinder_cancel"  # key: a response a client cancelled
QUEUE = "rejoinder_queue"  # key: a background response waiting for a replica
CHANNELS = (EVENTS, CANCEL, QUEUE)

FALLBACK_SECONDS = {"postgresql": 15.0, "sqlite": 1.0}
NOTES = "rejoinder_notes"  # ``Connection.info`` key: SQLite notes of the open transaction

_PG_NOTIFY = text("SELECT pg_notify(:channel, :key)")


def notify(conn: Connection, channel: str, key: str) -> None:
    """Inside a write transaction: wake whoever waits on ``(channel, key)`` once it commits."""
    if conn.dialect.name == "postgresql":
        conn.execute(_PG_NOTIFY, {"channel": channel, "key": key})
    else:
        conn.info.setdefault(NOTES, []).append((channel, key))


def take_notes(conn: Connection) -> list[tuple[str, str]]:
    """The SQLite notes of the transaction that just ended on ``conn`` (dropped when it failed)."""
    notes: list[tuple[str, str]] = conn.info.pop(NOTES, [])
    return notes


class Signal:
    """One waiter's wake-up: the keys that woke it since it last looked, or ``everything``."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.keys: set[str] = set()
        self.everything = False

    def _wake(self, key: str | None) -> None:
        if key is None:
            self.everything = True
        else:
            self.keys.add(key)
        self._event.set()

    def clear(self) -> None:
        """Before looking: a wake-up from now on is not lost."""
        self._event.clear()
        self.keys = set()
        self.everything = False

    async def wait(self, seconds: float) -> bool:
        """Until woken (True) or for ``seconds`` (False)."""
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        return True


class Wakeups:
    """This process's waiters, by channel and key (``None``: every key of the channel)."""

    def __init__(self, fallback_seconds: float):
        self.fallback_seconds = fallback_seconds
        self._watchers: dict[tuple[str, str | None], set[Signal]] = {}

    @contextlib.contextmanager
    def watch(self, channel: str, key: str | None = None) -> Iterator[Signal]:
        signal = Signal()
        slot = (channel, key)
        self._watchers.setdefault(slot, set()).add(signal)
        try:
            yield signal
        finally:
            watchers = self._watchers.get(slot)
            if watchers is not None:
                watchers.discard(signal)
                if not watchers:
                    del self._watchers[slot]

    def wake(self, channel: str, key: str) -> None:
        for slot in ((channel, key), (channel, None)):
            for signal in self._watchers.get(slot, ()):
                signal._wake(key)

    def wake_all(self) -> None:
        """Anything may have changed (a listener reconnected): every waiter looks again."""
        for signals in self._watchers.values():
            for signal in signals:
                signal._wake(None)


class PostgresListener:
    """LISTENs on ``CHANNELS`` over one dedicated asyncpg connection and feeds ``Wakeups``."""

    KEEPALIVE_SECONDS = 30.0  # a silent connection is checked this often
    APPLICATION_NAME = "rejoinder-listener"  # how operators tell it apart in pg_stat_activity
    MAX_BACKOFF_SECONDS = 5.0

    def __init__(self, url: str, wakeups: Wakeups):
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.wakeups = wakeups
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, patience: float = 10.0) -> None:
        """Begin listening; waits (up to ``patience`` seconds) for the first connection, so a
        replica that starts serving hears of what happens from then on."""
        self._task = asyncio.ensure_future(self._run())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(patience):
                await self.connected.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _on_note(self, _conn: Any, _pid: int, channel: str, key: str) -> None:
        self.wakeups.wake(channel, key)

    async def _run(self) -> None:
        import asyncpg

        backoff = 0.1
        failing = False
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self.dsn, server_settings={"application_name": self.APPLICATION_NAME})
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel in CHANNELS:
                    await conn.add_listener(channel, self._on_note)
                if failing:
                    log.warning("listening for notifications again")
                failing, backoff = False, 0.1
                self.connected.set()
                self.wakeups.wake_all()  # what happened while nobody listened is looked at again
                while not lost.is_set():
                    try:
                        async with asyncio.timeout(self.KEEPALIVE_SECONDS):
                            await lost.wait()
                    except TimeoutError:
                        await conn.fetchval("SELECT 1")  # raises if the connection died silently
                raise ConnectionError("the listening connection closed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:  # once per outage, not once per attempt
                    log.warning("lost the notification connection (%r); polling every %.0f s until it is back",
                                exc, self.wakeups.fallback_seconds)
                    failing = True
                self.connected.clear()
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.MAX_BACKOFF_SECONDS)
