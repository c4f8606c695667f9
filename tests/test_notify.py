"""Wake-ups: a committed write wakes the waiters of what it changed, on every replica; a rolled-back
one wakes nobody; a lost listening connection comes back and wakes everyone to look again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from rejoinder.store.db import Database
from rejoinder.store.notify import CANCEL, EVENTS, PostgresListener, notify
from tests.conftest import storage_url

WAIT = 30.0  # a bound for a failing test, never reached by a passing one


class Boom(Exception):
    pass


def test_a_committed_write_wakes_its_waiters_and_a_rolled_back_one_does_not(tmp_path: Path) -> None:
    url = storage_url(tmp_path)

    async def main() -> None:
        writer, reader = Database(url), Database(url)  # two replicas: one writes, one waits
        listener = PostgresListener(url, reader.wakeups) if reader.is_postgres else None
        try:
            if listener is not None:
                await listener.start()
            else:
                reader = writer  # SQLite: the waiters of the writing process itself
            with reader.wakeups.watch(EVENTS, "resp_1") as one, reader.wakeups.watch(EVENTS) as every, \
                    reader.wakeups.watch(EVENTS, "resp_2") as two:

                def fails(conn: Connection) -> None:
                    notify(conn, EVENTS, "resp_1")
                    raise Boom()

                with pytest.raises(Boom):
                    await writer.write(fails)
                await writer.write(lambda conn: notify(conn, EVENTS, "resp_2"))
                assert await two.wait(WAIT)  # delivered in commit order: the failed one never was
                assert two.keys == {"resp_2"}
                assert every.keys == {"resp_2"}
                assert not one.keys and not one.everything
                await writer.write(lambda conn: notify(conn, EVENTS, "resp_1"))
                assert await one.wait(WAIT)
                assert one.keys == {"resp_1"}
        finally:
            if listener is not None:
                await listener.stop()
                await reader.dispose()
            await writer.dispose()

    asyncio.run(main())


def test_the_listener_reconnects_and_wakes_everyone(pg_url: str) -> None:
    async def main() -> None:
        db = Database(pg_url)
        listener = PostgresListener(pg_url, db.wakeups)
        try:
            await listener.start()
            assert listener.connected.is_set()
            with db.wakeups.watch(CANCEL, "resp_1") as signal:
                await db.write(lambda conn: conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"),
                    {"name": PostgresListener.APPLICATION_NAME}))
                assert await signal.wait(WAIT)  # back, and anything may have happened meanwhile
                assert signal.everything
                signal.clear()
                await db.write(lambda conn: notify(conn, CANCEL, "resp_1"))
                assert await signal.wait(WAIT)
                assert signal.keys == {"resp_1"}
        finally:
            await listener.stop()
            await db.dispose()

    asyncio.run(main())
