"""Lease recovery on the suite's storage (SQLite, or PostgreSQL in the second pass)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from sqlalchemy import insert, select

from rejoinder.store.db import Database
from rejoinder.store.leases import LeaseStore
from rejoinder.store.migrations import migrate
from rejoinder.store.schema import responses
from tests.conftest import storage_url


def test_a_replica_never_settles_its_own_live_responses(tmp_path: Path) -> None:
    """A lapsed lease of this replica's own means it stalled (a renewal slower than the lease), not
    that it died: it still runs the turn and will store it. Another replica settles it."""

    url = storage_url(tmp_path)

    async def main() -> None:
        db = Database(url)
        try:
            await migrate(db)
            past = time.time() - 10
            await db.write(lambda conn: conn.execute(insert(responses), [
                {"id": rid, "owner": "o", "model": "m", "status": "in_progress", "background": False,
                 "created_at": past, "body": json.dumps({"id": rid}), "cancel_requested": False,
                 "lease_owner": owner, "lease_expires_at": past}
                for rid, owner in (("resp_mine", "a/1"), ("resp_theirs", "b/1"))
            ]))
            assert (await LeaseStore(db, "a/1", 30).recover_expired()).failed == ["resp_theirs"]
            assert (await LeaseStore(db, "a/1", 30).recover_expired()).failed == []
            assert (await LeaseStore(db, "c/1", 30).recover_expired()).failed == ["resp_mine"]
            statuses = dict(await db.read(lambda conn: conn.execute(select(responses.c.id, responses.c.status)).all()))
            assert statuses == {"resp_mine": "failed", "resp_theirs": "failed"}
        finally:
            await db.dispose()

    asyncio.run(main())
