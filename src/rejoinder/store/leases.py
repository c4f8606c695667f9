"""Leases on running responses, the background job queue, cancellation and crash recovery.

Every response a replica runs (foreground or background) carries ``lease_owner`` (that replica's
incarnation token) and ``lease_expires_at``. Each run renews its own lease (``renew``, called by
``services/leases.py`` while the run's task lives), and with it its conversation lock and its
partial output, kept as ``draft`` items. A response whose lease lapsed is settled: a queued
background one goes back to the queue; a started one is failed, its drafts becoming its output
(its events were already streamed, so re-running it would contradict what followers saw).

Who settles a lapsed lease: any other replica (its owner stopped renewing: it died or stalled), and
the owner itself for the runs it knows have no live task (``recover_expired(live=...)``).

On PostgreSQL every queue and recovery query locks its rows with ``FOR UPDATE SKIP LOCKED`` so
replicas never claim or recover the same row twice; on SQLite the database-wide write lock
(``BEGIN IMMEDIATE``) serialises them.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, and_, delete, insert, or_, select, update

from rejoinder.store import conversations as conv_store
from rejoinder.store.db import Database
from rejoinder.store.errors import Missing, NotCancellable
from rejoinder.store.jsonutil import dumps, loads
from rejoinder.store.notify import CANCEL, EVENTS, QUEUE, notify
from rejoinder.store.schema import ACTIVE, ACTIVE_STATUSES, conversations, response_items, responses
from rejoinder.tenant import Tenant, check_tenant

INTERRUPTED = "The response was interrupted before it finished: the server running it stopped."


@dataclass
class Recovered:
    """What a recovery pass did, for logs and tests."""

    failed: list[str]
    requeued: list[str]


def _locking(db: Database, query: Select[Any]) -> Select[Any]:
    return query.with_for_update(skip_locked=True) if db.is_postgres else query


def failed_body(body: dict[str, Any], message: str = INTERRUPTED) -> dict[str, Any]:
    """``body`` as a response that failed: what it produced so far stays, with OpenAI's error."""
    return {**body, "status": "failed", "completed_at": None, "error": {"code": "server_error", "message": message}}


def _fail(conn: Connection, row: Any, output: list[dict[str, Any]] | None, message: str) -> None:
    """Fail an active response: ``output`` as its output, or else the drafts its lease renewals
    kept; release its conversation; wake its followers."""
    body = failed_body(loads(row.body), message)
    body.pop("output", None)
    conn.execute(update(responses).where(responses.c.id == row.id).values(
        status="failed", body=dumps(body), lease_owner=None, lease_expires_at=None))
    mine = response_items.c.response_id == row.id
    conn.execute(delete(response_items).where(mine, response_items.c.kind == "output"))
    if output is None:
        conn.execute(update(response_items).where(mine, response_items.c.kind == "draft").values(kind="output"))
    else:
        conn.execute(delete(response_items).where(mine, response_items.c.kind == "draft"))
        if output:
            conn.execute(insert(response_items), [
                {"response_id": row.id, "kind": "output", "position": i, "item_id": item["id"], "data": dumps(item)}
                for i, item in enumerate(output)])
    if row.conversation_id:
        conv_store.release_lock(conn, row.conversation_id, row.id)
    if row.background:
        notify(conn, EVENTS, row.id)


_ROW = (responses.c.id, responses.c.status, responses.c.background, responses.c.body, responses.c.conversation_id,
        responses.c.lease_owner)


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

    async def release(self, response_id: str) -> None:
        """Give a claimed but unstarted job back to the queue (this replica let go of it)."""
        stmt = (
            update(responses)
            .where(responses.c.id == response_id, responses.c.lease_owner == self.owner,
                   responses.c.status == "queued")
            .values(lease_owner=None, lease_expires_at=None)
        )

        def txn(conn: Connection) -> None:
            if conn.execute(stmt).rowcount:
                notify(conn, QUEUE, response_id)

        await self.db.write(txn)

    async def mark_started(self, body: dict[str, Any]) -> bool:
        """queued -> in_progress, only if nobody cancelled it meanwhile."""
        def txn(conn: Connection) -> bool:
            started = conn.execute(
                update(responses)
                .where(responses.c.id == body["id"], responses.c.status == "queued",
                       responses.c.cancel_requested.is_(False))
                .values(status="in_progress", body=dumps({k: v for k, v in body.items() if k != "output"}),
                        lease_owner=self.owner, lease_expires_at=self.expiry())
            ).rowcount == 1
            return started

        return await self.db.write(txn)

    async def cancel_requested(self, ids: Collection[str]) -> list[str]:
        """Which of these responses (running here) a client asked to cancel, on any replica."""
        if not ids:
            return []
        query = select(responses.c.id).where(responses.c.id.in_(list(ids)), responses.c.cancel_requested.is_(True))
        return await self.db.read(lambda conn: [r.id for r in conn.execute(query)])

    # -- one run's lease ---------------------------------------------------------------------

    async def renew(self, response_id: str, *, row: bool, conversation_id: str | None,
                    drafts: list[dict[str, Any]] | None = None) -> bool:
        """Extend one run's lease: its row (``row``: it has one, leased to this replica), its
        conversation lock, and, with ``drafts``, the partial output kept in case it dies. Returns
        whether the row is still this replica's and active (True when it has none)."""
        expires = self.expiry()
        active = responses.c.status.in_(ACTIVE_STATUSES)  # by id: no search of the active index
        draft_rows = [{"response_id": response_id, "kind": "draft", "position": i, "item_id": item["id"],
                       "data": dumps(item)} for i, item in enumerate(drafts or [])]

        def txn(conn: Connection) -> bool:
            held = True
            if row:
                held = conn.execute(
                    update(responses)
                    .where(responses.c.id == response_id, responses.c.lease_owner == self.owner, active)
                    .values(lease_expires_at=expires)
                ).rowcount == 1
                if held and drafts is not None:
                    conn.execute(delete(response_items).where(response_items.c.response_id == response_id,
                                                              response_items.c.kind == "draft"))
                    if draft_rows:
                        conn.execute(insert(response_items), draft_rows)
            if conversation_id:
                conn.execute(
                    update(conversations)
                    .where(conversations.c.id == conversation_id, conversations.c.locked_by == response_id)
                    .values(locked_until=expires)
                )
            return held

        return await self.db.write(txn)

    async def fail(self, response_id: str, output: list[dict[str, Any]] | None, message: str) -> bool:
        """Fail one of this replica's active responses whose run's task ended without storing it:
        ``output`` is what it had produced (None: the drafts its renewals kept). Returns whether
        it was still active and this replica's."""
        query = select(*_ROW).where(responses.c.id == response_id, responses.c.lease_owner == self.owner,
                                    responses.c.status.in_(ACTIVE_STATUSES))
        if self.db.is_postgres:
            query = query.with_for_update()

        def txn(conn: Connection) -> bool:
            row = conn.execute(query).first()
            if row is None:
                return False
            _fail(conn, row, output, message)
            return True

        return await self.db.write(txn)

    # -- cancellation ------------------------------------------------------------------------

    async def request_cancel(self, response_id: str, tenant: Tenant) -> dict[str, Any]:
        """Mark a background response cancelled and return its body.

        A queued one is cancelled outright (and its conversation unlocked); a running one is
        marked, and the replica running it (woken by the notification) stops it and stores the
        partial output. Raises ``Missing`` and ``NotCancellable``.
        """
        query = select(responses.c.status, responses.c.background, responses.c.body,
                       responses.c.conversation_id).where(responses.c.id == response_id,
                                                          responses.c.owner == check_tenant(tenant).principal)
        if self.db.is_postgres:
            query = query.with_for_update()

        def txn(conn: Connection) -> dict[str, Any]:
            row = conn.execute(query).first()
            if row is None:
                raise Missing("Response", response_id)
            if not row.background:
                raise NotCancellable("Cannot cancel a synchronous response.")
            body: dict[str, Any] = loads(row.body)
            if row.status == "cancelled":
                return body
            if row.status not in ACTIVE_STATUSES:
                raise NotCancellable(f"Cannot cancel a {row.status} response.")
            body.update(status="cancelled", completed_at=None)
            conn.execute(
                update(responses).where(responses.c.id == response_id)
                .values(status="cancelled", cancel_requested=True, body=dumps(body))
            )
            if row.status == "queued" and row.conversation_id:
                conv_store.release_lock(conn, row.conversation_id, response_id)
            notify(conn, CANCEL, response_id)
            notify(conn, EVENTS, response_id)  # a follower of a cancelled response ends its stream
            return body

        return await self.db.write(txn)

    # -- crash recovery ----------------------------------------------------------------------

    async def recover_expired(self, limit: int = 100, *, live: Collection[str] | None = None) -> Recovered:
        """Settle responses whose lease lapsed.

        Another replica's lapsed lease means it died or stalled: settled. This replica's own are
        settled only when ``live`` is given and leaves them out: the caller knows no task of its
        runs them any more. Without ``live`` none of its own is touched (a lapse of its own lease
        may be a stall, a renewal slower than the lease, of a turn it still runs)."""
        now = time.time()
        lapsed = and_(responses.c.lease_expires_at < now, responses.c.lease_owner.is_not(None))
        if live is None:
            mine: Any = responses.c.lease_owner != self.owner
        else:
            mine = or_(responses.c.lease_owner != self.owner, responses.c.id.not_in(list(live)))
        return await self._recover(and_(lapsed, mine), limit)

    async def recover_previous_incarnations(self, replica_id: str, limit: int = 1000) -> Recovered:
        """At start-up a replica with a fixed id settles what its previous process left running,
        without waiting for the leases to lapse."""
        prefix = replica_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
        return await self._recover(
            and_(responses.c.lease_owner.like(prefix, escape="\\"), responses.c.lease_owner != self.owner),
            limit,
        )

    async def _recover(self, condition: Any, limit: int) -> Recovered:
        query = _locking(self.db, select(*_ROW).where(ACTIVE, condition).limit(limit))

        def txn(conn: Connection) -> Recovered:
            done = Recovered([], [])
            for row in conn.execute(query).all():
                if row.background and row.status == "queued":
                    same_lease = and_(responses.c.id == row.id, responses.c.lease_owner == row.lease_owner,
                                      responses.c.status == row.status)
                    conn.execute(update(responses).where(same_lease).values(lease_owner=None, lease_expires_at=None))
                    notify(conn, QUEUE, row.id)
                    done.requeued.append(row.id)
                    continue
                _fail(conn, row, None, INTERRUPTED)
                done.failed.append(row.id)
            return done

        return await self.db.write(txn)
