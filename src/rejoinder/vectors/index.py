"""The chunk index: each chunk's text and vector, with full-text search beside it.

SQLite: vectors are float32 BLOBs, copied into a sqlite-vec ``vec0`` table per dimension
(partitioned by vector store) for unfiltered nearest-neighbour scans; a filtered search ranks the
files' BLOBs with ``vec_distance_cosine``. Words go to an FTS5 table (porter stemming). Triggers
keep both in step with the chunks. PostgreSQL: a pgvector ``vector`` column
ranked with ``<=>`` and a generated ``tsvector`` (english) with a GIN index. Both rank exactly
(every chunk of the searched stores that passes the filters), so recall is perfect; see
docs/files-and-vector-stores.md for the scale this suits.

This table is not in ``store/schema.py``'s metadata: its vector column needs pgvector, which a
PostgreSQL server may lack. ``ensure_schema`` creates it at start-up when it can, and says why
not when it cannot; vector stores then answer 400 naming the missing extension.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    cast,
    delete,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import UserDefinedType

from rejoinder.store.db import Database
from rejoinder.vectors.chunking import Chunk

log = logging.getLogger(__name__)
_LOCK_KEY = 0x72656A76  # "rejv": replicas starting together create the extension and table once
PG_TEXT_CONFIG = "english"


class PgVector(UserDefinedType[Any]):
    """pgvector's type, bound as its text form ``[1,2,3]`` and cast in SQL (no driver codec)."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "vector"


def _table(postgres: bool) -> Table:
    meta = MetaData()
    columns: list[Any] = [
        Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
        Column("vector_store_id", String(80), nullable=False),
        Column("file_id", String(80), nullable=False),
        Column("position", Integer, nullable=False),
        Column("text", Text, nullable=False),
        Column("embedding", PgVector() if postgres else LargeBinary, nullable=False),
    ]
    if postgres:
        columns.append(Column("tsv", TSVECTOR, Computed(f"to_tsvector('{PG_TEXT_CONFIG}', text)", persisted=True)))
    table = Table("vector_chunks", meta, *columns)
    Index("ix_vector_chunks_store_file", table.c.vector_store_id, table.c.file_id, table.c.position)
    if postgres:
        Index("ix_vector_chunks_tsv", table.c.tsv, postgresql_using="gin")
    return table


SQLITE_CHUNKS = _table(postgres=False)
PG_CHUNKS = _table(postgres=True)

_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS vector_chunks_fts USING fts5("
    "text, content='vector_chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS vector_chunks_ai AFTER INSERT ON vector_chunks BEGIN "
    "INSERT INTO vector_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS vector_chunks_ad AFTER DELETE ON vector_chunks BEGIN "
    "INSERT INTO vector_chunks_fts(vector_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
)


def vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(f"{v:.7g}" for v in vector) + "]"


def vector_blob(vector: Sequence[float]) -> bytes:
    return array("f", vector).tobytes()


def vec_table(dimensions: int) -> str:
    """The sqlite-vec table holding the chunks' vectors of this many dimensions."""
    return f"vector_chunks_vec{int(dimensions)}"


def _ensure_vec_table(conn: Connection, dimensions: int) -> None:
    name = vec_table(dimensions)
    conn.execute(text(f"CREATE VIRTUAL TABLE IF NOT EXISTS {name} USING vec0(vector_store_id text partition key, "
                      f"embedding float[{int(dimensions)}] distance_metric=cosine)"))
    conn.execute(text(f"CREATE TRIGGER IF NOT EXISTS {name}_ad AFTER DELETE ON vector_chunks BEGIN "
                      f"DELETE FROM {name} WHERE rowid = old.id; END"))


class ChunkIndex:
    def __init__(self, db: Database):
        self.db = db
        self.postgres = db.is_postgres
        self.table = PG_CHUNKS if self.postgres else SQLITE_CHUNKS
        self.unavailable: str | None = "the chunk index was not set up"

    async def ensure_schema(self) -> str | None:
        """Create what the index needs; returns why it cannot exist here, or None."""
        try:
            if self.postgres:
                self.unavailable = await self.db.write(self._ensure_postgres)
            else:
                self.unavailable = await self.db.write(self._ensure_sqlite)
        except DBAPIError as exc:
            self.unavailable = f"the chunk index could not be created: {exc.orig!r}"
        return self.unavailable

    def _ensure_sqlite(self, conn: Connection) -> str | None:
        try:
            conn.execute(text("SELECT vec_version()"))
        except DBAPIError:
            return "the sqlite-vec extension cannot be loaded into SQLite (pip install sqlite-vec)"
        self.table.create(conn, checkfirst=True)
        for statement in _SQLITE_FTS:
            conn.execute(text(statement))
        return None

    def _ensure_postgres(self, conn: Connection) -> str | None:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        installed = conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first()
        if installed is None:
            offered = conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first()
            if offered is None:
                return ("this PostgreSQL server does not have the extension 'vector' (pgvector); install "
                        "pgvector on the server to use vector stores")
            with conn.begin_nested():  # a refused CREATE EXTENSION must not abort the transaction
                try:
                    conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
                except DBAPIError as exc:
                    return (f"the PostgreSQL extension 'vector' (pgvector) is not enabled in this database and "
                            f"could not be created ({exc.orig!r}); run CREATE EXTENSION vector as a superuser")
        self.table.create(conn, checkfirst=True)
        # Vectors stay in the row (compressed only as a last resort): in TOAST, which a 384-float
        # vector beside a chunk's text reaches by default, every distance first fetched the vector
        # from the TOAST table, 22 ms instead of 4.6 ms for a scan of 9,300 chunks.
        storage = conn.execute(text("SELECT attstorage FROM pg_attribute WHERE attrelid = 'vector_chunks'::regclass "
                                    "AND attname = 'embedding'")).scalar()
        if storage != "m":
            conn.execute(text("ALTER TABLE vector_chunks ALTER COLUMN embedding SET STORAGE MAIN"))
        return None

    # -- writing -----------------------------------------------------------------------------

    def insert(self, conn: Connection, vector_store_id: str, file_id: str, chunks: list[Chunk],
               vectors: list[list[float]]) -> None:
        if not chunks:
            return
        if self.postgres:
            stmt = insert(self.table).values(embedding=cast(bindparam("vec", type_=Text), PgVector()))
            rows = [{"vector_store_id": vector_store_id, "file_id": file_id, "position": c.position,
                     "text": c.text, "vec": vector_literal(v)} for c, v in zip(chunks, vectors, strict=True)]
        else:
            stmt = insert(self.table)
            rows = [{"vector_store_id": vector_store_id, "file_id": file_id, "position": c.position,
                     "text": c.text, "embedding": vector_blob(v)} for c, v in zip(chunks, vectors, strict=True)]
        conn.execute(stmt, rows)
        if not self.postgres:
            dimensions = len(vectors[0])
            _ensure_vec_table(conn, dimensions)
            conn.execute(text(f"INSERT INTO {vec_table(dimensions)}(rowid, vector_store_id, embedding) "
                              "SELECT id, vector_store_id, embedding FROM vector_chunks "
                              "WHERE vector_store_id = :s AND file_id = :f"), {"s": vector_store_id, "f": file_id})

    def delete(self, conn: Connection, vector_store_id: str | None, file_ids: list[str] | None) -> None:
        """Drop the chunks of these files in one store, of a whole store, or of files everywhere."""
        if self.unavailable is not None:
            return
        stmt = delete(self.table)
        if vector_store_id is not None:
            stmt = stmt.where(self.table.c.vector_store_id == vector_store_id)
        if file_ids is not None:
            stmt = stmt.where(self.table.c.file_id.in_(file_ids))
        conn.execute(stmt)

    def texts(self, conn: Connection, vector_store_id: str, file_id: str) -> list[str]:
        if self.unavailable is not None:
            return []
        t = self.table
        query = select(t.c.text).where(t.c.vector_store_id == vector_store_id, t.c.file_id == file_id) \
            .order_by(t.c.position)
        return [r[0] for r in conn.execute(query)]
