"""Files attached to vector stores, and file batches.

Attaching a file puts it in the ingestion queue (status ``in_progress``); ``ingest.py`` takes it
from there. Attaching a file that is already in the store re-ingests it with the new attributes
and chunking; its old chunks stay searchable until the new ones replace them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from rejoinder.files.objects import file_not_found
from rejoinder.files.store import visible_file
from rejoinder.store.db import Database
from rejoinder.store.jsonutil import dumps
from rejoinder.store.pagination import Order, Page
from rejoinder.store.schema import vector_store_file_batches, vector_store_files
from rejoinder.tenant import Tenant, check_tenant
from rejoinder.vectors.index import ChunkIndex
from rejoinder.vectors.objects import batch_body, batch_not_found, file_body, vs_file_not_found
from rejoinder.vectors.store import counts_of, owned_store, page_by_seq


@dataclass(frozen=True)
class Attach:
    file_id: str
    attributes: dict[str, Any] | None
    chunking_strategy: dict[str, Any]


def attach(conn: Connection, vector_store_id: str, owner: Tenant, entries: list[Attach], batch_id: str | None) -> None:
    """Queue each file for ingestion into the store (all or none: an unknown file is a 404)."""
    f = vector_store_files
    now = time.time()
    for entry in entries:
        if visible_file(conn, entry.file_id, owner) is None:
            raise file_not_found(entry.file_id)
    for entry in entries:
        values = {"status": "in_progress", "last_error": None, "attributes": entry.attributes,
                  "chunking_strategy": dumps(entry.chunking_strategy), "usage_bytes": 0, "batch_id": batch_id,
                  "lease_owner": None, "lease_expires_at": None, "attempts": 0}
        done = conn.execute(update(f).where(f.c.vector_store_id == vector_store_id, f.c.file_id == entry.file_id)
                            .values(**values)).rowcount
        if not done:
            conn.execute(insert(f).values(vector_store_id=vector_store_id, file_id=entry.file_id,
                                          owner=check_tenant(owner).principal,
                                          created_at=now, **values))


def _file_row(conn: Connection, vector_store_id: str, file_id: str) -> Any:
    f = vector_store_files
    row = conn.execute(select(f).where(f.c.vector_store_id == vector_store_id, f.c.file_id == file_id)).first()
    if row is None:
        raise vs_file_not_found(file_id, vector_store_id)
    return row


def _batch_row(conn: Connection, vector_store_id: str, batch_id: str, owner: Tenant) -> Any:
    owned_store(conn, vector_store_id, owner)
    b = vector_store_file_batches
    row = conn.execute(select(b).where(b.c.id == batch_id, b.c.vector_store_id == vector_store_id)).first()
    if row is None:
        raise batch_not_found(batch_id)
    return row


def _batch_object(conn: Connection, row: Any) -> dict[str, Any]:
    return batch_body(row, counts_of(conn, vector_store_files.c.batch_id, [row.id])[row.id])


class VectorStoreFiles:
    def __init__(self, db: Database, index: ChunkIndex):
        self.db = db
        self.index = index

    async def attach_one(self, vector_store_id: str, owner: Tenant, entry: Attach) -> dict[str, Any]:
        def txn(conn: Connection) -> dict[str, Any]:
            owned_store(conn, vector_store_id, owner)
            attach(conn, vector_store_id, owner, [entry], None)
            return file_body(_file_row(conn, vector_store_id, entry.file_id))

        return await self.db.write(txn)

    async def create_batch(self, batch_id: str, vector_store_id: str, owner: Tenant,
                           entries: list[Attach]) -> dict[str, Any]:
        def txn(conn: Connection) -> dict[str, Any]:
            owned_store(conn, vector_store_id, owner)
            conn.execute(insert(vector_store_file_batches).values(
                id=batch_id, vector_store_id=vector_store_id, owner=check_tenant(owner).principal,
                created_at=time.time(), cancelled=False))
            attach(conn, vector_store_id, owner, entries, batch_id)
            return _batch_object(conn, _batch_row(conn, vector_store_id, batch_id, owner))

        return await self.db.write(txn)

    async def get(self, vector_store_id: str, file_id: str, owner: Tenant) -> dict[str, Any]:
        def txn(conn: Connection) -> dict[str, Any]:
            owned_store(conn, vector_store_id, owner)
            return file_body(_file_row(conn, vector_store_id, file_id))

        return await self.db.read(txn)

    async def list_files(self, vector_store_id: str, owner: Tenant, status: str | None, after: str | None,
                   before: str | None, limit: int, order: Order, batch_id: str | None = None) -> Page:
        f = vector_store_files

        def txn(conn: Connection) -> Page:
            if batch_id is not None:
                _batch_row(conn, vector_store_id, batch_id, owner)
            else:
                owned_store(conn, vector_store_id, owner)
            query = select(f).where(f.c.vector_store_id == vector_store_id)
            if status is not None:
                query = query.where(f.c.status == status)
            if batch_id is not None:
                query = query.where(f.c.batch_id == batch_id)

            def lookup(file_id: str) -> Any:
                return conn.execute(select(f.c.seq).where(f.c.vector_store_id == vector_store_id,
                                                          f.c.file_id == file_id)).scalar()

            return page_by_seq(conn, query, f.c.seq, lookup, after, before, limit, order,
                               lambda rows: [file_body(r) for r in rows])

        return await self.db.read(txn)

    async def update_attributes(self, vector_store_id: str, file_id: str, owner: Tenant,
                                attributes: dict[str, Any] | None) -> dict[str, Any]:
        f = vector_store_files

        def txn(conn: Connection) -> dict[str, Any]:
            owned_store(conn, vector_store_id, owner)
            _file_row(conn, vector_store_id, file_id)
            conn.execute(update(f).where(f.c.vector_store_id == vector_store_id, f.c.file_id == file_id)
                         .values(attributes=attributes))
            return file_body(_file_row(conn, vector_store_id, file_id))

        return await self.db.write(txn)

    async def delete(self, vector_store_id: str, file_id: str, owner: Tenant) -> None:
        f = vector_store_files

        def txn(conn: Connection) -> None:
            owned_store(conn, vector_store_id, owner)
            _file_row(conn, vector_store_id, file_id)
            self.index.delete(conn, vector_store_id, [file_id])
            conn.execute(delete(f).where(f.c.vector_store_id == vector_store_id, f.c.file_id == file_id))

        await self.db.write(txn)

    async def content(self, vector_store_id: str, file_id: str, owner: Tenant) -> list[str]:
        def txn(conn: Connection) -> list[str]:
            owned_store(conn, vector_store_id, owner)
            _file_row(conn, vector_store_id, file_id)
            return self.index.texts(conn, vector_store_id, file_id)

        return await self.db.read(txn)

    async def get_batch(self, vector_store_id: str, batch_id: str, owner: Tenant) -> dict[str, Any]:
        return await self.db.read(lambda conn: _batch_object(conn, _batch_row(conn, vector_store_id, batch_id, owner)))

    async def cancel_batch(self, vector_store_id: str, batch_id: str, owner: Tenant) -> dict[str, Any]:
        """Files of the batch not yet ingested become ``cancelled`` (and lose any older chunks); an
        ingestion already running notices at its final write and keeps nothing. A batch with
        nothing left to ingest stays as it is."""
        f = vector_store_files

        def txn(conn: Connection) -> dict[str, Any]:
            row = _batch_row(conn, vector_store_id, batch_id, owner)
            pending = [r.file_id for r in conn.execute(select(f.c.file_id).where(
                f.c.batch_id == batch_id, f.c.vector_store_id == vector_store_id, f.c.status == "in_progress"))]
            if pending:
                self.index.delete(conn, vector_store_id, pending)
                conn.execute(update(f).where(f.c.batch_id == batch_id, f.c.vector_store_id == vector_store_id,
                                             f.c.status == "in_progress")
                             .values(status="cancelled", lease_owner=None, lease_expires_at=None))
                conn.execute(update(vector_store_file_batches).where(vector_store_file_batches.c.id == row.id)
                             .values(cancelled=True))
            return _batch_object(conn, _batch_row(conn, vector_store_id, batch_id, owner))

        return await self.db.write(txn)

    def forget_files(self, conn: Connection, file_ids: list[str]) -> None:
        """A deleted file leaves every vector store (``FileStore``'s delete hook)."""
        self.index.delete(conn, None, file_ids)
        conn.execute(delete(vector_store_files).where(vector_store_files.c.file_id.in_(file_ids)))
