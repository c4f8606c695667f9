"""Versioned schema migrations.

A fresh database gets the latest schema (``schema.metadata``) and is stamped ``LATEST_VERSION``.
An older database runs each step in ``STEPS`` above its version, in order. A schema change adds a
step here and bumps ``LATEST_VERSION`` in ``schema.py``. Replicas starting together on PostgreSQL
serialise on an advisory lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import insert, inspect, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rejoinder.store import schema
from rejoinder.store.db import Database

Step = Callable[[AsyncConnection], Awaitable[None]]

# version -> step that upgrades version-1 to version
STEPS: dict[int, Step] = {}

_ADVISORY_LOCK_KEY = 0x72656A6F  # "rejo"


async def _current_version(conn: AsyncConnection) -> int | None:
    has_table = await conn.run_sync(lambda c: inspect(c).has_table("schema_version"))
    if not has_table:
        return None
    row = (await conn.execute(select(schema.schema_version.c.version))).first()
    return row[0] if row else None


async def migrate(db: Database) -> int:
    """Bring the database to the latest version; returns that version."""
    async with db.write() as conn:
        if db.is_postgres:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
        version = await _current_version(conn)
        if version is None:
            await conn.run_sync(schema.metadata.create_all)
            await conn.execute(insert(schema.schema_version).values(version=schema.LATEST_VERSION))
            return schema.LATEST_VERSION
        if version > schema.LATEST_VERSION:
            raise RuntimeError(
                f"database schema version {version} is newer than this Rejoinder ({schema.LATEST_VERSION})"
            )
        for target in range(version + 1, schema.LATEST_VERSION + 1):
            await STEPS[target](conn)
            await conn.execute(update(schema.schema_version).values(version=target))
        return schema.LATEST_VERSION
