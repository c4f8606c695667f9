"""Counts read for metrics at scrape time."""

from __future__ import annotations

from sqlalchemy import func, select

from rejoinder.store.db import Database
from rejoinder.store.schema import ACTIVE, responses

# Background responses no replica has taken yet, the rows ``LeaseStore.claim`` looks for. ``ACTIVE``
# is repeated word for word so SQLite uses the partial index of active rows (see schema.py).
_QUEUED = (select(func.count()).select_from(responses)
           .where(ACTIVE, responses.c.status == "queued", responses.c.background.is_(True),
                  responses.c.lease_owner.is_(None)))


async def queued_count(db: Database) -> int:
    return int(await db.read(lambda conn: conn.execute(_QUEUED).scalar() or 0))
