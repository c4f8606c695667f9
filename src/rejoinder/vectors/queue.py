"""The ingestion queue in the database: ``vector_store_files`` rows ``in_progress`` are jobs.

A replica claims a job by setting a lease on its row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
SQLite's write lock elsewhere), renews it while it works, and writes the result only if the row
still carries its lease and is still ``in_progress``: a file detached, re-attached or cancelled
meanwhile keeps what the client asked for. A lease that lapsed (a replica died) makes the job
claimable again; after ``MAX_ATTEMPTS`` claims it fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, exists, or_, select, update

from rejoinder.store.db import Database
from rejoinder.store.jsonutil import dumps, loads
from rejoinder.store.schema import INGESTING, files, vector_store_files, vector_stores
from rejoinder.vectors.chunking import Chunk
from rejoinder.vectors.index import ChunkIndex

MAX_ATTEMPTS = 3
RETRY = "retry"  # the lease of a job that waits to be tried again: no replica renews it
f = vector_store_files


@dataclass(frozen=True)
class Job:
    vector_store_id: str
    file_id: str
    filename: str
    chunking_strategy: dict[str, Any]
    embedding_model: str
    attempt: int


def _claimable(now: float) -> Any:
    return and_(INGESTING, or_(f.c.lease_owner.is_(None), f.c.lease_expires_at < now))


class IngestQueue:
    def __init__(self, db: Database, index: ChunkIndex, owner: str, lease_seconds: float):
        self.db = db
        self.index = index
        self.owner = owner
        self.lease_seconds = lease_seconds

    def _mine(self, job: Job) -> Any:
        return and_(f.c.vector_store_id == job.vector_store_id, f.c.file_id == job.file_id, INGESTING,
                    f.c.lease_owner == self.owner)

    async def has_work(self) -> bool:
        query = select(exists().where(_claimable(time.time())))
        return bool(await self.db.read(lambda conn: conn.execute(query).scalar()))

    async def claim(self, limit: int) -> list[Job]:
        now = time.time()
        pick = (select(f.c.seq, f.c.vector_store_id, f.c.file_id, f.c.chunking_strategy, f.c.attempts,
                       f.c.lease_owner, files.c.filename, vector_stores.c.embedding_model)
                .join(files, files.c.id == f.c.file_id)
                .join(vector_stores, vector_stores.c.id == f.c.vector_store_id)
                .where(_claimable(now)).order_by(f.c.seq).limit(limit))
        if self.db.is_postgres:
            pick = pick.with_for_update(of=f, skip_locked=True)

        def txn(conn: Connection) -> list[Job]:
            jobs = []
            for row in conn.execute(pick).all():
                same = and_(f.c.seq == row.seq, INGESTING, f.c.attempts == row.attempts)
                if row.attempts >= MAX_ATTEMPTS:
                    conn.execute(update(f).where(same).values(
                        status="failed", lease_owner=None, lease_expires_at=None,
                        last_error=dumps({"code": "server_error", "message": "Processing the file was interrupted "
                                          f"{row.attempts} times; it was given up."})))
                    continue
                conn.execute(update(f).where(same).values(lease_owner=self.owner, attempts=row.attempts + 1,
                                                          lease_expires_at=now + self.lease_seconds))
                jobs.append(Job(row.vector_store_id, row.file_id, row.filename, loads(row.chunking_strategy),
                                row.embedding_model, row.attempts + 1))
            return jobs

        return await self.db.write(txn)

    async def renew(self) -> None:
        stmt = update(f).where(INGESTING, f.c.lease_owner == self.owner) \
            .values(lease_expires_at=time.time() + self.lease_seconds)
        await self.db.write(lambda conn: conn.execute(stmt))

    async def complete(self, job: Job, chunks: list[Chunk], vectors: list[list[float]], usage_bytes: int) -> bool:
        """Replace the file's chunks in the store and mark it completed, if the job is still ours."""
        def txn(conn: Connection) -> bool:
            done = conn.execute(update(f).where(self._mine(job)).values(
                status="completed", usage_bytes=usage_bytes, last_error=None, lease_owner=None,
                lease_expires_at=None)).rowcount
            if done:
                self.index.delete(conn, job.vector_store_id, [job.file_id])
                self.index.insert(conn, job.vector_store_id, job.file_id, chunks, vectors)
            return bool(done)

        return await self.db.write(txn)

    async def fail(self, job: Job, code: str, message: str) -> bool:
        def txn(conn: Connection) -> bool:
            done = conn.execute(update(f).where(self._mine(job)).values(
                status="failed", usage_bytes=0, last_error=dumps({"code": code, "message": message}),
                lease_owner=None, lease_expires_at=None)).rowcount
            if done:
                self.index.delete(conn, job.vector_store_id, [job.file_id])
            return bool(done)

        return await self.db.write(txn)

    async def retry_later(self, job: Job, delay: float) -> None:
        """Claimable again after ``delay`` seconds, by any replica (the model failed for now)."""
        stmt = update(f).where(self._mine(job)).values(lease_owner=RETRY, lease_expires_at=time.time() + delay)
        await self.db.write(lambda conn: conn.execute(stmt))

    async def release(self, job: Job) -> None:
        """Give the job back (this replica stops, or the embedding model failed for now)."""
        stmt = update(f).where(self._mine(job)).values(lease_owner=None, lease_expires_at=None)
        await self.db.write(lambda conn: conn.execute(stmt))
