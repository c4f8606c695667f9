"""Versioned schema migrations.

A fresh database gets the latest schema (``schema.metadata``) and is stamped ``LATEST_VERSION``.
An older database runs each step in ``STEPS`` above its version, in order. A schema change adds a
step here and bumps ``LATEST_VERSION`` in ``schema.py``. Replicas starting together on PostgreSQL
serialise on an advisory lock.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, insert, inspect, select, text, update

from rejoinder.store import schema
from rejoinder.store.db import Database

Step = Callable[[Connection], None]


def _v2_fewer_index_writes(conn: Connection) -> None:
    """Fewer B-trees written per stored turn: the status index keeps only active responses
    (``schema.ACTIVE``), and the (response, kind, item id) index goes; the one lookup by item id
    (``input_items?after=``) reads within a response's own primary-key range."""
    conn.execute(text("DROP INDEX IF EXISTS ix_response_items_item"))
    conn.execute(text("DROP INDEX IF EXISTS ix_responses_status"))
    next(ix for ix in schema.responses.indexes if ix.name == "ix_responses_active").create(conn)


def _v3_prepared_jobs(conn: Connection) -> None:
    """A queued background job keeps what its preparation found (``responses.prepared``), so it is
    prepared once, by the replica that accepted it."""
    if "prepared" not in {c["name"] for c in inspect(conn).get_columns("responses")}:
        conn.execute(text("ALTER TABLE responses ADD COLUMN prepared TEXT"))


def _v4_conversations_by_owner(conn: Connection) -> None:
    """``GET /v1/conversations`` lists one principal's conversations newest first."""
    next(ix for ix in schema.conversations.indexes if ix.name == "ix_conversations_owner_seq").create(
        conn, checkfirst=True)


def _v5_files_and_vector_stores(conn: Connection) -> None:
    """The Files and Vector Stores APIs' tables (the chunk index is ``vectors/index.py``'s)."""
    schema.metadata.create_all(conn, tables=list(schema.VERSION_5_TABLES))


# version -> step that upgrades version-1 to version
STEPS: dict[int, Step] = {2: _v2_fewer_index_writes, 3: _v3_prepared_jobs, 4: _v4_conversations_by_owner,
                          5: _v5_files_and_vector_stores}

_ADVISORY_LOCK_KEY = 0x72656A6F  # "rejo"


def current_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table("schema_version"):
        return None
    row = conn.execute(select(schema.schema_version.c.version)).first()
    return row[0] if row else None


def _migrate(conn: Connection, is_postgres: bool) -> int:
    if is_postgres:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
    version = current_version(conn)
    if version is None:
        schema.metadata.create_all(conn)
        conn.execute(insert(schema.schema_version).values(version=schema.LATEST_VERSION))
        return schema.LATEST_VERSION
    if version > schema.LATEST_VERSION:
        raise RuntimeError(
            f"database schema version {version} is newer than this Rejoinder ({schema.LATEST_VERSION})"
        )
    for target in range(version + 1, schema.LATEST_VERSION + 1):
        STEPS[target](conn)
        conn.execute(update(schema.schema_version).values(version=target))
    return schema.LATEST_VERSION


async def migrate(db: Database) -> int:
    """Bring the database to the latest version, in one write transaction; returns that version."""
    return await db.write(lambda conn: _migrate(conn, db.is_postgres))
