"""Vector stores in the database. Every method that takes an ``owner`` treats another principal's
store as missing: a 404, for reads and mutations alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, delete, func, insert, select, update

from rejoinder.store.db import Database
from rejoinder.store.jsonutil import dumps
from rejoinder.store.pagination import Order, Page
from rejoinder.store.schema import vector_store_file_batches, vector_store_files, vector_stores
from rejoinder.tenant import ACROSS_TENANTS, Scope, Tenant, check_scope, check_tenant
from rejoinder.vectors.index import ChunkIndex
from rejoinder.vectors.objects import Counts, store_body, store_not_found

T = TypeVar("T")
UNSET: Any = object()


def page_by_seq(conn: Connection, query: Select[Any], seq: Any, lookup: Callable[[str], Any], after: str | None,
                before: str | None, limit: int, order: Order, body: Callable[[list[Any]], list[dict[str, Any]]]
                ) -> Page:
    """A page of ``query`` ordered by ``seq``, after or before an id (``lookup`` finds its seq)."""
    ascending = order == "asc"
    if after is not None:
        key = lookup(after)
        if key is None:
            return Page([], False)
        query = query.where(seq > key if ascending else seq < key)
    if before is not None:
        key = lookup(before)
        if key is None:
            return Page([], False)
        query = query.where(seq < key if ascending else seq > key)
        ascending = not ascending  # walk back from the cursor, then restore the order
    rows = list(conn.execute(query.order_by(seq.asc() if ascending else seq.desc()).limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    if before is not None:
        rows.reverse()
    return Page(body(rows), more)


def counts_of(conn: Connection, column: Any, keys: list[str]) -> dict[str, Counts]:
    """File counts and usage, grouped by ``column`` (a store id or a batch id)."""
    out = {k: Counts() for k in keys}
    if not keys:
        return out
    f = vector_store_files
    query = select(column, f.c.status, func.count(), func.coalesce(func.sum(f.c.usage_bytes), 0)) \
        .where(column.in_(keys)).group_by(column, f.c.status)
    for key, status, count, usage in conn.execute(query):
        out[key].by_status[status] = int(count)
        out[key].usage_bytes += int(usage)
    return out


def owned_store(conn: Connection, vector_store_id: str, scope: Scope) -> Any:
    query = select(vector_stores).where(vector_stores.c.id == vector_store_id)
    tenant = check_scope(scope)
    if tenant is not None:
        query = query.where(vector_stores.c.owner == tenant.principal)
    row = conn.execute(query).first()
    if row is None:
        raise store_not_found(vector_store_id)
    return row


def store_object(conn: Connection, row: Any) -> dict[str, Any]:
    return store_body(row, counts_of(conn, vector_store_files.c.vector_store_id, [row.id])[row.id])


class VectorStoreStore:
    def __init__(self, db: Database, index: ChunkIndex):
        self.db = db
        self.index = index

    def create(self, conn: Connection, vector_store_id: str, tenant: Tenant, name: str, description: str | None,
               metadata: dict[str, str], expires_after_days: int | None, embedding_model: str) -> Any:
        now = time.time()
        conn.execute(insert(vector_stores).values(
            id=vector_store_id, owner=check_tenant(tenant).principal, created_at=now, name=name,
            description=description, metadata=dumps(metadata), expires_after_days=expires_after_days,
            last_active_at=now, embedding_model=embedding_model))
        return owned_store(conn, vector_store_id, ACROSS_TENANTS)

    async def get(self, vector_store_id: str, owner: Tenant) -> dict[str, Any]:
        return await self.db.read(lambda conn: store_object(conn, owned_store(conn, vector_store_id, owner)))

    async def get_row(self, vector_store_id: str, owner: Scope) -> Any:
        return await self.db.read(lambda conn: owned_store(conn, vector_store_id, owner))

    async def list_stores(self, tenant: Tenant, after: str | None, before: str | None, limit: int,
                          order: Order) -> Page:
        v = vector_stores
        owner = check_tenant(tenant).principal

        def lookup(conn: Connection) -> Callable[[str], Any]:
            return lambda i: conn.execute(select(v.c.seq).where(v.c.id == i, v.c.owner == owner)).scalar()

        def bodies(conn: Connection, rows: list[Any]) -> list[dict[str, Any]]:
            counts = counts_of(conn, vector_store_files.c.vector_store_id, [r.id for r in rows])
            return [store_body(r, counts[r.id]) for r in rows]

        def txn(conn: Connection) -> Page:
            return page_by_seq(conn, select(v).where(v.c.owner == owner), v.c.seq, lookup(conn), after, before,
                               limit, order, lambda rows: bodies(conn, rows))

        return await self.db.read(txn)

    async def update(self, vector_store_id: str, owner: Tenant, name: Any = UNSET, metadata: Any = UNSET,
                     expires_after_days: Any = UNSET) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if name is not UNSET:
            values["name"] = name or ""
        if metadata is not UNSET:
            values["metadata"] = dumps(metadata)
        if expires_after_days is not UNSET:
            values["expires_after_days"] = expires_after_days

        def txn(conn: Connection) -> dict[str, Any]:
            owned_store(conn, vector_store_id, owner)
            if values:
                conn.execute(update(vector_stores).where(vector_stores.c.id == vector_store_id).values(**values))
            return store_object(conn, owned_store(conn, vector_store_id, ACROSS_TENANTS))

        return await self.db.write(txn)

    async def delete(self, vector_store_id: str, owner: Tenant) -> None:
        """The store, its files' attachments, batches and chunks, in one transaction (the files
        themselves stay, as OpenAI keeps them)."""
        def txn(conn: Connection) -> None:
            owned_store(conn, vector_store_id, owner)
            self.index.delete(conn, vector_store_id, None)
            conn.execute(delete(vector_store_files).where(vector_store_files.c.vector_store_id == vector_store_id))
            conn.execute(delete(vector_store_file_batches)
                         .where(vector_store_file_batches.c.vector_store_id == vector_store_id))
            conn.execute(delete(vector_stores).where(vector_stores.c.id == vector_store_id))

        await self.db.write(txn)

    async def touch(self, vector_store_ids: list[str]) -> None:
        """A search makes its stores active (their expiry counts from now)."""
        stmt = update(vector_stores).where(vector_stores.c.id.in_(vector_store_ids)).values(last_active_at=time.time())
        await self.db.write(lambda conn: conn.execute(stmt))
