"""Schema migrations from a version-1 database, and the active-response index the queue searches."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, insert, inspect, select, text

from rejoinder.store import schema
from rejoinder.store.db import Database
from rejoinder.store.leases import LeaseStore
from rejoinder.store.migrations import migrate
from rejoinder.store.schema import ACTIVE_STATUSES, responses
from rejoinder.store.sqlite_driver import SQLITE as sqlite3  # the library the store uses: one per process


def _row(i: int, status: str, background: bool = False) -> dict[str, Any]:
    return {"id": f"resp_{i}", "owner": "o", "status": status, "model": "m", "created_at": time.time(),
            "background": background, "body": "{}", "cancel_requested": False}


def _version_1(conn: Connection) -> None:
    """A database as Rejoinder 0.1 (schema version 1) left it, with a few rows."""
    schema.metadata.create_all(conn)
    conn.execute(text("DROP INDEX ix_responses_active"))
    conn.execute(text("DROP INDEX ix_conversations_owner_seq"))
    conn.execute(text("CREATE INDEX ix_responses_status ON responses (status)"))
    conn.execute(text("CREATE INDEX ix_response_items_item ON response_items (response_id, kind, item_id)"))
    conn.execute(insert(schema.schema_version).values(version=1))
    conn.execute(insert(responses), [_row(1, "completed"), _row(2, "queued", background=True)])
    conn.execute(insert(schema.response_items).values(response_id="resp_1", kind="input", position=0,
                                                      item_id="msg_1", data="{}"))


def _indexes(conn: Connection) -> dict[str, set[str]]:
    found = {t: {ix["name"] for ix in inspect(conn).get_indexes(t)}
             for t in ("responses", "response_items", "conversations")}
    return {t: {n for n in names if n and n.startswith("ix_")} for t, names in found.items()}


def test_version_1_is_migrated_in_place(shared_storage_url: str) -> None:
    async def main() -> None:
        db = Database(shared_storage_url)
        try:
            await db.write(_version_1)
            assert await migrate(db) == schema.LATEST_VERSION == 5
            assert await migrate(db) == 5  # a second start has nothing to do
            assert await db.read(_indexes) == {"responses": {"ix_responses_owner_seq", "ix_responses_active"},
                                               "response_items": set(),
                                               "conversations": {"ix_conversations_owner_seq"}}
            rows = await db.read(lambda conn: conn.execute(select(responses.c.id, responses.c.status)
                                                           .order_by(responses.c.id)).all())
            assert [tuple(r) for r in rows] == [("resp_1", "completed"), ("resp_2", "queued")]
            leases = LeaseStore(db, "replica/1", 30)
            assert await leases.has_queued()
            assert await leases.claim(5) == ["resp_2"]
        finally:
            await db.dispose()

    asyncio.run(main())


def test_the_queue_and_recovery_search_the_active_index(tmp_path: Path) -> None:
    """Every statement that looks for active responses uses the partial index on SQLite, where it
    must repeat the index's condition to be allowed to (a full scan of every stored turn else)."""
    url = f"sqlite:///{tmp_path / 'r.db'}"

    async def main() -> list[tuple[str, Any]]:
        db = Database(url)
        seen: list[tuple[str, Any]] = []
        event.listen(db.sync_engine, "before_cursor_execute",
                     lambda _c, _cur, statement, params, _ctx, _many: seen.append((statement, params)))
        try:
            await migrate(db)
            await db.write(lambda conn: conn.execute(insert(responses), [_row(i, "completed") for i in range(50)]
                                                     + [_row(50, "queued", background=True)]))
            leases = LeaseStore(db, "replica/1", 30)
            assert await leases.has_queued()
            assert await leases.claim(5) == ["resp_50"]
            await leases.renew("resp_50", row=True, conversation_id=None)
            await leases.recover_previous_incarnations("replica")
            await leases.recover_expired()
            await leases.recover_expired(live=["resp_50"])  # this replica's own, but for its live runs
        finally:
            await db.dispose()
        return seen

    seen = asyncio.run(main())
    active = "IN (" + ", ".join(f"'{s}'" for s in ACTIVE_STATUSES) + ")"
    searches = [(s, p) for s, p in seen if active in s and not s.lstrip().startswith("CREATE")]
    assert len(searches) >= 5, seen
    with sqlite3.connect(tmp_path / "r.db") as conn:
        for statement, params in searches:
            plan = " ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + statement, params))
            assert "ix_responses_active" in plan, (statement, plan)


def test_version_4_gains_the_files_and_vector_store_tables(shared_storage_url: str) -> None:
    async def main() -> None:
        db = Database(shared_storage_url)
        try:
            def version_4(conn: Connection) -> None:
                schema.metadata.create_all(conn, tables=[t for t in schema.metadata.sorted_tables
                                                         if t not in schema.VERSION_5_TABLES])
                conn.execute(insert(schema.schema_version).values(version=4))

            await db.write(version_4)
            assert await migrate(db) == 5
            tables = set(await db.read(lambda conn: inspect(conn).get_table_names()))
            assert {t.name for t in schema.VERSION_5_TABLES} <= tables
            await db.write(lambda conn: conn.execute(insert(schema.files).values(
                id="file-1", owner="o", created_at=1.0, filename="a.txt", purpose="assistants", bytes=0,
                complete=True)))
        finally:
            await db.dispose()

    asyncio.run(main())
