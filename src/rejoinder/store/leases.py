"""Leases on running responses, the background job queue, cancellation and crash recovery.

Every response a replica is running (foreground or background) carries ``lease_owner`` (that
replica's incarnation token) and ``lease_expires_at``; the replica renews its leases while it
lives. A response whose lease lapsed belongs to a dead replica: a foreground one is failed, a
queued background one goes back to the queue, a background one that had started is failed (its
events were already streamed, so re-running it would contradict what followers saw).

On PostgreSQL every queue and recovery query locks its rows with ``FOR UPDATE SKIP LOCKED`` so
replicas never claim or recover the same row twice; on SQLite the database-wide write lock
(``BEGIN IMMEDIATE``) serialises them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, and_, select, update

from rejoinder.errors import InvalidRequest
from rejoinder.store import conversations as conv_store
from rejoinder.store.db import Database
from rejoinder.store.jsonutil import dumps, loads
from rejoinder.store.schema import ACTIVE, ACTIVE_STATUSES, conversations, responses

INTERRUPTED = "The response was interrupted before it finished: the server running it stopped."


@dataclass
class Recovered:
    """What a recovery pass did, for logs and tests."""

    failed: list[str]
    requeued: list[str]


def _locking(db: Database, query: Select[Any]) -> Select[Any]:
    return query.with_for_update(skip_locked=True) if db.is_postgres else query


def _failed_body(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "status": "failed", "completed_at": None,
            "error": {"code": "server_error", "message": INTERRUPTED}}


class LeaseStore:
    def __init__(self, db: Database, owner: str, lease_seconds: float, conversation_lock_seconds: float = 600.0):
        self.db = db
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.conversation_lock_seconds = conversation_lock_seconds

    def expiry(self) -> float:
        return time.time() + self.lease_seconds

    # -- the queue ---------------------------------------------------------------------------

    async def has_queued(self) -> bool:
        """A cheap read before taking a write lock: SQLite has one writer for the whole file."""
        query = (
            select(responses.c.id)
            .where(ACTIVE, responses.c.status == "queued", responses.c.background.is_(True),
                   responses.c.lease_owner.is_(None))
            .limit(1)
        )
        return await self.db.read(lambda conn: conn.execute(query).first() is not None)

    async def claim(self, limit: int) -> list[str]:
        """Take up to ``limit`` unowned queued background responses, oldest first."""
        if limit <= 0:
            return []
        pick = _locking(self.db, (
            select(responses.c.id)
            .where(ACTIVE, responses.c.status == "queued", responses.c.background.is_(True),
                   responses.c.lease_owner.is_(None))
            .order_by(responses.c.seq).limit(limit)
        ))

        def txn(conn: Connection) -> list[str]:
            ids = [r.id for r in conn.execute(pick)]
            if ids:
                conn.execute(
                    update(responses).where(responses.c.id.in_(ids), responses.c.lease_owner.is_(None))
                    .values(lease_owner=self.owner, lease_expires_at=self.expiry())
                )
            return ids

        return await self.db.write(txn)

    async def renew(self) -> int:
        """Extend every lease this replica holds, and the conversation locks of those responses (a
        turn that runs longer than ``conversation_lock_seconds`` keeps its conversation); returns
        how many rows it holds."""
        def txn(conn: Connection) -> int:
            mine = and_(ACTIVE, responses.c.lease_owner == self.owner)
            held = conn.execute(update(responses).where(mine).values(lease_expires_at=self.expiry())).rowcount
            if held:
                running = select(responses.c.id).where(mine, responses.c.conversation_id.is_not(None))
                conn.execute(
                    update(conversations).where(conversations.c.locked_by.in_(running))
                    .values(locked_until=time.time() + self.conversation_lock_seconds)
                )
            return held

        return await self.db.write(txn)

    async def release(self, response_id: str) -> None:
        """Give a claimed but unstarted job back to the queue (this replica is shutting down)."""
        stmt = (
            update(responses)
            .where(responses.c.id == response_id, responses.c.lease_owner == self.owner,
                   responses.c.status == "queued")
            .values(lease_owner=None, lease_expires_at=None)
        )
        await self.db.write(lambda conn: conn.execute(stmt))

    async def mark_started(self, body: dict[str, Any]) -> bool:
        """queued -> in_progress, only if nobody cancelled it meanwhile."""
        def txn(conn: Connection) -> bool:
            return conn.execute(
                update(responses)
                .where(responses.c.id == body["id"], responses.c.status == "queued",
                       responses.c.cancel_requested.is_(False))
                .values(status="in_progress", body=dumps({k: v for k, v in body.items() if k != "output"}),
                        lease_owner=self.owner, lease_expires_at=self.expiry())
            ).rowcount == 1

        return await self.db.write(txn)

    async def cancel_requested(self, ids: list[str]) -> list[str]:
        """Which of these responses (running here) a client asked to cancel, on any replica."""
        if not ids:
            return []
        query = select(responses.c.id).where(responses.c.id.in_(ids), responses.c.cancel_requested.is_(True))
        return await self.db.read(lambda conn: [r.id for r in conn.execute(query)])

    # -- cancellation ------------------------------------------------------------------------

    async def request_cancel(self, response_id: str, owner: str | None) -> dict[str, Any] | None:
        """Mark a background response cancelled; None if there is no such response.

        A queued one is cancelled outright (and its conversation unlocked); a running one is
        marked and its worker, wherever it runs, stops it and stores the partial output.
        """
        query = select(responses.c.status, responses.c.background, responses.c.body,
                       responses.c.conversation_id).where(responses.c.id == response_id)
        if owner is not None:
            query = query.where(responses.c.owner == owner)
        if self.db.is_postgres:
            query = query.with_for_update()

        def txn(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(query).first()
            if row is None:
                return None
            if not row.background:
                raise InvalidRequest("Cannot cancel a synchronous response.")
            body = loads(row.body)
            if row.status == "cancelled":
                return body
            if row.status not in ACTIVE_STATUSES:
                raise InvalidRequest(f"Cannot cancel a {row.status} response.")
            body.update(status="cancelled", completed_at=None)
            conn.execute(
                update(responses).where(responses.c.id == response_id)
                .values(status="cancelled", cancel_requested=True, body=dumps(body))
            )
            if row.status == "queued" and row.conversation_id:
                conv_store.release_lock(conn, row.conversation_id, response_id)
            return body

        return await self.db.write(txn)

    # -- crash recovery ----------------------------------------------------------------------

    async def recover_expired(self, limit: int = 100) -> Recovered:
        """Settle responses whose lease lapsed: their replica died or stalled. Never this replica's
        own: it is running them and renews them, and a stall of its own (a renewal whose commit
        took longer than the lease, on a loaded database) must not fail its live turns. What it
        stops running, its next incarnation or another replica settles."""
        now = time.time()
        expired = and_(responses.c.lease_expires_at < now, responses.c.lease_owner.is_not(None),
                       responses.c.lease_owner != self.owner)
        return await self._recover(expired, limit)

    async def recover_previous_incarnations(self, replica_id: str, limit: int = 1000) -> Recovered:
        """At start-up a replica with a fixed id settles what its previous process left running,
        without waiting for the leases to lapse."""
        prefix = replica_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
        return await self._recover(
            and_(responses.c.lease_owner.like(prefix, escape="\\"), responses.c.lease_owner != self.owner),
            limit,
        )

    async def _recover(self, condition: Any, limit: int) -> Recovered:
        query = _locking(self.db, (
            select(responses.c.id, responses.c.status, responses.c.background, responses.c.body,
                   responses.c.conversation_id, responses.c.lease_owner)
            .where(ACTIVE, condition).limit(limit)
        ))

        def txn(conn: Connection) -> Recovered:
            done = Recovered([], [])
            for row in conn.execute(query).all():
                same_lease = and_(responses.c.id == row.id, responses.c.lease_owner == row.lease_owner,
                                  responses.c.status == row.status)
                if row.background and row.status == "queued":
                    conn.execute(update(responses).where(same_lease).values(lease_owner=None, lease_expires_at=None))
                    done.requeued.append(row.id)
                    continue
                body = _failed_body(loads(row.body))
                conn.execute(update(responses).where(same_lease).values(
                    status="failed", body=dumps(body), lease_owner=None, lease_expires_at=None))
                if row.conversation_id:
                    conv_store.release_lock(conn, row.conversation_id, row.id)
                done.failed.append(row.id)
            return done

        return await self.db.write(txn)
