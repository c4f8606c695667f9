"""Files in the database: one ``files`` row, the bytes in ``file_parts`` rows of ``part_bytes`` each.

The database was chosen over a shared directory so every replica reads every file with nothing
more to configure, a file's deletion is one transaction, and backups hold everything
(docs/files-and-vector-stores.md). Every method that takes an ``owner`` treats another
principal's file as missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, update

from rejoinder.files.objects import file_body
from rejoinder.store.db import Database
from rejoinder.store.pagination import Order, Page, page_of, paginate
from rejoinder.store.schema import file_parts, files
from rejoinder.tenant import Scope, Tenant, check_scope, check_tenant

STALE_UPLOAD_SECONDS = 6 * 3600  # an upload still incomplete after this was cut off by a crash
OnDelete = Callable[[Connection, list[str]], None]


def _visible(now: float) -> Any:
    return (files.c.complete.is_(True)) & (or_(files.c.expires_at.is_(None), files.c.expires_at > now))


def visible_file(conn: Connection, file_id: str, scope: Scope) -> Any:
    """The file's row if ``scope`` may see it: complete and not expired."""
    query = select(files).where(files.c.id == file_id, _visible(time.time()))
    tenant = check_scope(scope)
    if tenant is not None:
        query = query.where(files.c.owner == tenant.principal)
    return conn.execute(query).first()


class FileStore:
    def __init__(self, db: Database, on_delete: OnDelete | None = None):
        self.db = db
        self.on_delete = on_delete  # drops what other tables hold of deleted files (vector stores)

    # -- an upload, part by part -------------------------------------------------------------

    async def begin(self, file_id: str, tenant: Tenant, filename: str) -> None:
        stmt = insert(files).values(id=file_id, owner=check_tenant(tenant).principal, created_at=time.time(),
                                    filename=filename, purpose="", bytes=0, complete=False)
        await self.db.write(lambda conn: conn.execute(stmt))

    async def put_part(self, file_id: str, part: int, data: bytes) -> None:
        stmt = insert(file_parts).values(file_id=file_id, part=part, data=data)
        await self.db.write(lambda conn: conn.execute(stmt))

    async def complete(self, file_id: str, purpose: str, size: int, expires_in: int | None) -> dict[str, Any]:
        def txn(conn: Connection) -> dict[str, Any]:
            row = conn.execute(select(files.c.created_at).where(files.c.id == file_id)).first()
            assert row is not None
            expires_at = row.created_at + expires_in if expires_in is not None else None
            conn.execute(update(files).where(files.c.id == file_id)
                         .values(purpose=purpose, bytes=size, complete=True, expires_at=expires_at))
            return file_body(conn.execute(select(files).where(files.c.id == file_id)).one())

        return await self.db.write(txn)

    async def discard(self, file_id: str) -> None:
        """Drop an upload that failed or was cut short, with whatever parts it wrote."""
        await self.db.write(lambda conn: _delete_rows(conn, [file_id]))

    # -- reading -----------------------------------------------------------------------------

    async def get(self, file_id: str, scope: Scope) -> dict[str, Any] | None:
        def txn(conn: Connection) -> dict[str, Any] | None:
            row = visible_file(conn, file_id, scope)
            return file_body(row) if row is not None else None

        return await self.db.read(txn)

    async def list_files(self, tenant: Tenant, purpose: str | None, after: str | None, limit: int,
                         order: Order) -> Page:
        owner = check_tenant(tenant).principal

        def txn(conn: Connection) -> Page:
            query = select(files).where(files.c.owner == owner, _visible(time.time()))
            if purpose is not None:
                query = query.where(files.c.purpose == purpose)
            after_seq = None
            if after is not None:
                after_seq = conn.execute(select(files.c.seq).where(files.c.id == after,
                                                                   files.c.owner == owner)).scalar()
                if after_seq is None:
                    return Page([], False)
            rows = conn.execute(paginate(query, files.c.seq, order, after_seq, limit)).all()
            return page_of([file_body(r) for r in rows], limit)

        return await self.db.read(txn)

    async def part_count(self, file_id: str) -> int:
        query = select(func.count()).select_from(file_parts).where(file_parts.c.file_id == file_id)
        return int(await self.db.read(lambda conn: conn.execute(query).scalar() or 0))

    async def read_part(self, file_id: str, part: int) -> bytes | None:
        """One part per transaction: a download never holds more than a part in memory."""
        query = select(file_parts.c.data).where(file_parts.c.file_id == file_id, file_parts.c.part == part)
        return await self.db.read(lambda conn: conn.execute(query).scalar())

    async def read_all(self, file_id: str) -> bytes:
        query = select(file_parts.c.data).where(file_parts.c.file_id == file_id).order_by(file_parts.c.part)
        return await self.db.read(lambda conn: b"".join(r[0] for r in conn.execute(query)))

    # -- deleting ----------------------------------------------------------------------------

    async def delete(self, file_id: str, tenant: Tenant) -> bool:
        def txn(conn: Connection) -> bool:
            if visible_file(conn, file_id, check_tenant(tenant)) is None:
                return False
            self._delete(conn, [file_id])
            return True

        return await self.db.write(txn)

    async def sweep(self, limit: int = 100) -> list[str]:
        """Delete expired files and uploads a crash left incomplete; returns their ids."""
        now = time.time()
        gone = or_(files.c.expires_at <= now,
                   files.c.complete.is_(False) & (files.c.created_at < now - STALE_UPLOAD_SECONDS))

        def txn(conn: Connection) -> list[str]:
            ids = [r.id for r in conn.execute(select(files.c.id).where(gone).limit(limit))]
            if ids:
                self._delete(conn, ids)
            return ids

        return await self.db.write(txn)

    def _delete(self, conn: Connection, ids: list[str]) -> None:
        if self.on_delete is not None:
            self.on_delete(conn, ids)
        _delete_rows(conn, ids)


def _delete_rows(conn: Connection, ids: list[str]) -> None:
    conn.execute(delete(file_parts).where(file_parts.c.file_id.in_(ids)))
    conn.execute(delete(files).where(files.c.id.in_(ids)))
