"""Database transaction functions: rollback on error, serialised writes, reads beside a write,
in-memory SQLite, and a clean shutdown. On the suite's storage backend unless noted."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, insert, select

from rejoinder.store.conversations import ConversationStore
from rejoinder.store.db import Database
from rejoinder.store.errors import DuplicateItem, Missing
from rejoinder.store.migrations import migrate
from rejoinder.store.schema import conversations
from rejoinder.store.sqlite_driver import SQLITE as sqlite3  # the library the store uses: one per process
from rejoinder.tenant import Tenant

OWNER = Tenant("o")


class Boom(Exception):
    pass


def _item(i: str) -> dict[str, str]:
    return {"type": "message", "id": i, "role": "user"}


def test_an_exception_rolls_back_and_propagates_unchanged(shared_storage_url: str) -> None:
    async def main() -> None:
        db = Database(shared_storage_url)
        try:
            await migrate(db)
            store = ConversationStore(db)
            boom = Boom()

            def fails(conn: Connection) -> None:
                conn.execute(insert(conversations).values(id="conv_x", owner="o", created_at=time.time(),
                                                          metadata="{}", next_position=0))
                raise boom

            with pytest.raises(Boom) as caught:
                await db.write(fails)
            assert caught.value is boom
            assert await store.get("conv_x", OWNER) is None

            await store.create("conv_a", OWNER, {}, [_item("m1")])
            with pytest.raises(DuplicateItem) as dup:
                await store.add_items("conv_a", OWNER, [_item("m2"), _item("m1")])
            assert dup.value.code == "duplicate_item"
            await store.add_items("conv_a", OWNER, [_item("m3")])  # the failed batch reserved no positions
            next_position = await db.read(
                lambda conn: conn.execute(select(conversations.c.next_position)
                                          .where(conversations.c.id == "conv_a")).scalar())
            assert next_position == 2
            assert [i["id"] for i in await store.context_items("conv_a", OWNER) or []] == ["m1", "m3"]
            with pytest.raises(Missing):
                await store.add_items("conv_a", Tenant("someone-else"), [_item("m4")])
        finally:
            await db.dispose()

    asyncio.run(main())


def test_concurrent_writes_are_serialised_and_contiguous(shared_storage_url: str) -> None:
    async def main() -> None:
        db = Database(shared_storage_url)
        try:
            await migrate(db)
            store = ConversationStore(db)
            await store.create("conv_c", OWNER, {}, [])
            await asyncio.gather(*(store.add_items("conv_c", OWNER, [_item(f"b{b}_{i}") for i in range(3)])
                                   for b in range(40)))
            ids = [i["id"] for i in await store.context_items("conv_c", OWNER) or []]
            assert len(ids) == 120
            for start in range(0, 120, 3):  # each batch landed in one piece
                batch = {i.split("_")[0] for i in ids[start:start + 3]}
                assert len(batch) == 1, ids[start:start + 3]
        finally:
            await db.dispose()

    asyncio.run(main())


def test_sqlite_threads_reads_beside_a_write_and_shutdown(tmp_path: Path) -> None:
    """One writer thread for every write; reads do not queue behind it; dispose() finishes queued
    writes and ends every thread."""

    async def main() -> None:
        path = tmp_path / "t.db"
        db = Database(f"sqlite+aiosqlite:///{path}")
        await migrate(db)
        store = ConversationStore(db)
        await store.create("conv_t", OWNER, {}, [])
        writers: set[threading.Thread] = set()
        readers: set[threading.Thread] = set()

        writing, release = threading.Event(), threading.Event()

        def slow_write(conn: Connection) -> None:
            writers.add(threading.current_thread())
            writing.set()
            release.wait(30)  # held open until the read below is done

        def read(conn: Connection) -> int:
            readers.add(threading.current_thread())
            return conn.execute(select(conversations.c.next_position)).scalar_one()

        slow = asyncio.ensure_future(db.write(slow_write))
        try:
            assert await asyncio.to_thread(writing.wait, 10)
            # A read queued behind the open write would wait for ``release``: it never comes first.
            assert await asyncio.wait_for(db.read(read), 10) == 0
            assert not slow.done()
        finally:
            release.set()

        def add(n: int) -> asyncio.Future[None]:
            def fn(conn: Connection) -> None:
                writers.add(threading.current_thread())
            return asyncio.ensure_future(asyncio.gather(db.write(fn),
                                                        store.add_items("conv_t", OWNER, [_item(f"q{n}")])))

        queued = [add(n) for n in range(20)]
        await asyncio.sleep(0)  # submitted, not finished
        await db.dispose()
        await asyncio.gather(slow, *queued)
        assert len(writers) == 1 and writers.isdisjoint(readers)
        assert not any(t.is_alive() for t in writers | readers)

        again = Database(f"sqlite+aiosqlite:///{path}")
        try:
            assert len(await ConversationStore(again).context_items("conv_t", OWNER) or []) == 20
        finally:
            await again.dispose()

    asyncio.run(main())


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite://"])
def test_in_memory_sqlite(url: str) -> None:
    """An in-memory database is one connection's: reads and writes share the writer's."""

    async def main() -> None:
        db = Database(url)
        try:
            await migrate(db)
            store = ConversationStore(db)
            await store.create("conv_m", OWNER, {"k": "v"}, [_item("m1")])
            assert (await store.get("conv_m", OWNER) or {})["metadata"] == {"k": "v"}
            assert [i["id"] for i in await store.context_items("conv_m", OWNER) or []] == ["m1"]
        finally:
            await db.dispose()

    asyncio.run(main())


def test_a_cancelled_sqlite_write_keeps_nothing(tmp_path: Path) -> None:
    """As with an awaited transaction (PostgreSQL): a write whose caller is cancelled, queued or
    running, is rolled back (a caller that never learns of a lock it took must not leave it held)."""

    async def main() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
        try:
            await migrate(db)
            store = ConversationStore(db)
            started, release = threading.Event(), threading.Event()

            def slow_create(conn: Connection) -> None:
                conn.execute(insert(conversations).values(id="conv_slow", owner="o", created_at=time.time(),
                                                          metadata="{}", next_position=0))
                started.set()
                release.wait(10)  # still running when its caller is cancelled

            running = asyncio.ensure_future(db.write(slow_create))
            queued = asyncio.ensure_future(store.create("conv_queued", OWNER, {}, []))
            await asyncio.to_thread(started.wait, 5)
            running.cancel()
            queued.cancel()
            await asyncio.sleep(0)  # the cancellations are delivered
            release.set()
            for task in (running, queued):
                with pytest.raises(asyncio.CancelledError):
                    await task
            await store.create("conv_after", OWNER, {}, [])  # runs after the cancelled ones
            assert await store.get("conv_slow", OWNER) is None
            assert await store.get("conv_queued", OWNER) is None
            assert await store.get("conv_after", OWNER) is not None
        finally:
            await db.dispose()

    asyncio.run(main())


def test_inline_sqlite_write_falls_back_to_the_writer_thread_while_the_lock_is_held(tmp_path: Path) -> None:
    """A turn's write runs on the event loop only when SQLite's write lock is free; when another
    connection (another process, say) holds it, the write waits on the writer thread instead of
    failing or blocking the loop, and lands once the lock is released."""
    path = tmp_path / "busy.db"

    async def main() -> None:
        db = Database(f"sqlite:///{path}")
        try:
            await migrate(db)
            store = ConversationStore(db)
            await store.create("conv_b", OWNER, {}, [])
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # the lock, held elsewhere
            ticks = 0

            async def loop_runs() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            ticker = asyncio.ensure_future(loop_runs())
            write = asyncio.ensure_future(store.try_lock("conv_b", OWNER, "resp_1", 60))
            await asyncio.sleep(0.3)
            assert not write.done() and ticks >= 3  # waiting, and the loop still runs meanwhile
            other.execute("COMMIT")
            assert await asyncio.wait_for(write, 10) is True
            ticker.cancel()
            inline_before = db._inline.commits if db._inline else 0
            await store.unlock("conv_b", "resp_1")  # the lock is free again: this one runs inline
            assert db._inline is not None and db._inline.commits == inline_before + 1
            assert await store.try_lock("conv_b", OWNER, "resp_2", 60) is True
        finally:
            await db.dispose()

    asyncio.run(main())


def test_inline_sqlite_write_rolls_back_on_error_and_checkpoints(tmp_path: Path) -> None:
    from rejoinder.store import db as db_module

    path = tmp_path / "inline.db"

    async def main() -> None:
        db = Database(f"sqlite:///{path}")
        try:
            await migrate(db)

            def fails(conn: Connection) -> None:
                conn.execute(insert(conversations).values(id="conv_x", owner="o", created_at=time.time(),
                                                          metadata="{}", next_position=0))
                raise Boom()

            with pytest.raises(Boom):
                await db.write(fails, inline=True)
            for i in range(db_module.CHECKPOINT_EVERY):
                await db.write(lambda conn, i=i: conn.execute(insert(conversations).values(
                    id=f"conv_{i}", owner="o", created_at=time.time(), metadata="{}", next_position=0)),
                    inline=True)
            ids = await db.read(lambda conn: [r.id for r in conn.execute(select(conversations.c.id))])
            assert "conv_x" not in ids and len(ids) == db_module.CHECKPOINT_EVERY
            await asyncio.gather(*db._pending)  # the checkpoint the last commit started
            # The database file alone (the WAL ignored) has every row: the checkpoint copied them.
            file_only = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
            assert file_only.execute("SELECT count(*) FROM conversations").fetchone()[0] == len(ids)
            file_only.close()
        finally:
            await db.dispose()
        assert not path.with_name(path.name + "-wal").exists()  # every connection closed cleanly

    asyncio.run(main())


def test_inline_sqlite_transaction_is_the_drivers_and_takes_sqlalchemy_statements_too(tmp_path: Path) -> None:
    """A turn's statements run on the driver (``prepared.py``) inside the driver's own transaction;
    a statement through SQLAlchemy in the same function joins that transaction. Both commit
    together, and an error after either rolls both back."""
    from sqlalchemy import func

    from rejoinder.store.responses import _INSERT_RESPONSE, _response_row
    from rejoinder.store.schema import responses

    path = tmp_path / "mixed.db"
    body = {"id": "resp_1", "status": "completed", "model": "m", "created_at": 1.0, "output": []}

    def conversation(cid: str) -> Any:
        return insert(conversations).values(id=cid, owner="o", created_at=1.0, metadata="{}", next_position=0)

    async def main() -> None:
        db = Database(f"sqlite:///{path}")
        try:
            await migrate(db)

            def raw_then_fail(conn: Connection) -> None:
                _INSERT_RESPONSE.execute(conn, _response_row({**body, "id": "resp_x"}, OWNER))
                raise Boom()

            def both_then_fail(conn: Connection) -> None:
                _INSERT_RESPONSE.execute(conn, _response_row({**body, "id": "resp_y"}, OWNER))
                conn.execute(conversation("conv_y"))
                raise Boom()

            def both(conn: Connection) -> None:
                conn.execute(conversation("conv_1"))
                _INSERT_RESPONSE.execute(conn, _response_row(body, OWNER))

            for fails in (raw_then_fail, both_then_fail):
                with pytest.raises(Boom):
                    await db.write(fails, inline=True)
            await db.write(both, inline=True)
            await db.write(lambda conn: _INSERT_RESPONSE.execute(conn, _response_row({**body, "id": "resp_2"}, OWNER)),
                           inline=True)
            assert db._inline is not None and db._inline.commits == 2

            def counts(conn: Connection) -> tuple[list[str], list[str]]:
                return ([r.id for r in conn.execute(select(responses.c.id).order_by(responses.c.id))],
                        [r.id for r in conn.execute(select(conversations.c.id))])

            assert await db.read(counts) == (["resp_1", "resp_2"], ["conv_1"])
            # Nothing is left open on the loop's connection: another connection can write at once.
            other = sqlite3.connect(path, isolation_level=None, timeout=0)
            other.execute("BEGIN IMMEDIATE")
            assert other.execute(select(func.count()).select_from(responses).compile().string).fetchone() == (2,)
            other.execute("ROLLBACK")
            other.close()
        finally:
            await db.dispose()

    asyncio.run(main())


def test_prepared_statements_get_every_parameter_they_name() -> None:
    """The turn's statements skip SQLAlchemy's defaults: the rows built for them must name every
    column, or SQLite fails the turn at run time."""
    from rejoinder.store import responses as R

    body = {"id": "r", "status": "completed", "model": "m", "created_at": 1.0, "output": [{"id": "i"}]}
    assert set(R._response_row(body, OWNER)) == R._INSERT_RESPONSE.parameters
    assert set(R._item_rows("r", "output", body["output"])[0]) == R._INSERT_ITEMS.parameters
    finish = {"b_id", "lease_owner", "lease_expires_at", *R._row_values(body)}
    assert finish == R._FINISH.parameters
    assert finish | {"a0", "a1", "a2"} == R._FINISH_IF_ACTIVE.parameters


def test_a_failed_inline_commit_leaves_nothing_open(tmp_path: Path) -> None:
    """If COMMIT itself fails on the loop's connection, the write is rolled back and the next one
    starts cleanly (a transaction left open would fail every later turn)."""
    from rejoinder.store.responses import _INSERT_RESPONSE, _response_row
    from rejoinder.store.schema import responses

    class FailingCommit:
        """The driver connection, with its next COMMIT failing."""

        def __init__(self, raw: Any) -> None:
            self.raw = raw
            self.fail = True

        def __getattr__(self, name: str) -> Any:
            return getattr(self.raw, name)

        def execute(self, sql: str, *args: Any) -> Any:
            if sql == "COMMIT" and self.fail:
                self.fail = False
                raise sqlite3.OperationalError("disk I/OWNER error")
            return self.raw.execute(sql, *args)

    def insert_response(rid: str) -> Any:
        body = {"id": rid, "status": "completed", "model": "m", "created_at": 1.0}
        return lambda conn: _INSERT_RESPONSE.execute(conn, _response_row(body, OWNER))

    async def main() -> None:
        db = Database(f"sqlite:///{tmp_path / 'commit.db'}")
        try:
            await migrate(db)
            await db.write(insert_response("resp_0"), inline=True)  # opens the loop's connection
            assert db._inline is not None
            db._inline._raw = FailingCommit(db._inline._raw)
            with pytest.raises(Exception, match="disk I/OWNER"):
                await db.write(insert_response("resp_1"), inline=True)
            await db.write(insert_response("resp_2"), inline=True)
            ids = await db.read(lambda conn: [r.id for r in conn.execute(select(responses.c.id).order_by(
                responses.c.id))])
            assert ids == ["resp_0", "resp_2"]
        finally:
            await db.dispose()

    asyncio.run(main())


def test_a_large_payload_is_written_off_the_event_loop(tmp_path: Path) -> None:
    """A turn's small writes run inline on the loop's thread; one carrying a large input (or a
    large output, or a large conversation append) goes to the writer thread, where SQLite copies it
    with the GIL released instead of stopping the loop."""
    from rejoinder.store.payload import INLINE_MAX_CHARS
    from rejoinder.store.responses import ResponseStore

    def message(i: str, chars: int) -> dict[str, Any]:
        return {"type": "message", "id": i, "role": "user", "content": [{"type": "input_text", "text": "x" * chars}]}

    def body(rid: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": rid, "status": "in_progress", "model": "m", "created_at": 1.0, "output": output}

    async def main() -> None:
        db = Database(f"sqlite:///{tmp_path / 'large.db'}")
        try:
            await migrate(db)
            store = ResponseStore(db, lease_owner="a/1")
            assert db._inline is not None
            await store.create(body("resp_small", []), OWNER, [message("m1", 100)])
            assert db._inline.commits == 1
            await store.create(body("resp_large", []), OWNER, [message("m2", INLINE_MAX_CHARS + 1)])
            assert db._inline.commits == 1  # the writer thread took it
            assert await store.finish({**body("resp_small", [message("o1", 100)]), "status": "completed"})
            assert db._inline.commits == 2
            assert await store.finish({**body("resp_large", [message("o2", INLINE_MAX_CHARS + 1)]),
                                       "status": "completed"})
            assert db._inline.commits == 2
            stored = await store.get("resp_large", OWNER)
            assert stored is not None and len(stored.body["output"][0]["content"][0]["text"]) == INLINE_MAX_CHARS + 1
            assert len((await store.input_items("resp_large"))[0]["content"][0]["text"]) == INLINE_MAX_CHARS + 1
        finally:
            await db.dispose()

    asyncio.run(main())
