"""Responses and their input/output items.

A response is written twice: once when it starts (status ``in_progress``, with its input items) so
that ``GET`` finds it while it runs, and once when it ends, in the same transaction as its
output items and its conversation append, before the terminal event is sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, literal, select, update

from rejoinder.store import conversations as conv_store
from rejoinder.store.db import Database
from rejoinder.store.jsonutil import dumps, loads
from rejoinder.store.metadata_filter import metadata_matches
from rejoinder.store.notify import EVENTS, QUEUE, notify
from rejoinder.store.pagination import Order, Page, page_of, paginate
from rejoinder.store.payload import small
from rejoinder.store.prepared import Prepared
from rejoinder.store.schema import ACTIVE_STATUSES, conversations, response_events, response_items, responses
from rejoinder.tenant import Scope, Tenant, check_scope, check_tenant


@dataclass
class StoredResponse:
    body: dict[str, Any]  # the full Response object, output included
    tenant: Tenant
    background: bool
    request: dict[str, Any] | None
    cancel_requested: bool
    prepared: dict[str, Any] | None = None  # a queued job's preparation (see ``create``)


@dataclass
class QueuedJob:
    """What a background response stores beyond a turn's row: the request to run, what preparing
    it found (``prepared``), its first events, and, when it waits in the queue, until when its
    conversation stays locked (``(conversation id, expiry)``)."""

    request: dict[str, Any]
    events: list[tuple[int, str]]
    prepared: dict[str, Any] | None = None
    conversation_lock: tuple[str, float] | None = None


@dataclass
class ConversationAppend:
    conversation_id: str
    items: list[dict[str, Any]]
    lock_holder: str


# The columns a response's body decides (``_row_values``), set when it is created and when it ends.
_BODY_COLUMNS = ("status", "model", "created_at", "previous_response_id", "conversation_id", "background", "body")


def _row_values(body: dict[str, Any]) -> dict[str, Any]:
    """The ``_BODY_COLUMNS`` of a response."""
    conversation = body.get("conversation") or {}
    return {
        "status": body["status"],
        "model": body["model"],
        "created_at": body["created_at"],
        "previous_response_id": body.get("previous_response_id"),
        "conversation_id": conversation.get("id"),
        "background": bool(body.get("background")),
        "body": dumps({k: v for k, v in body.items() if k != "output"}),
    }


# The statements a turn writes, built once and run on SQLite's cursor (see ``prepared.py``).
_INSERT_RESPONSE = Prepared(insert(responses), ("id", "owner", "request", "prepared", "lease_owner",
                                                "lease_expires_at", "cancel_requested", *_BODY_COLUMNS))
_INSERT_ITEMS = Prepared(insert(response_items), ("response_id", "kind", "position", "item_id", "data"))
_FINISH_COLUMNS = ("lease_owner", "lease_expires_at", *_BODY_COLUMNS)
_FINISH = Prepared(update(responses).where(responses.c.id == bindparam("b_id")), _FINISH_COLUMNS)
# Only while the row is in one of the statuses a0..a2 (a set of fewer is padded by repeating one).
_FINISH_IF_ACTIVE = Prepared(
    update(responses).where(responses.c.id == bindparam("b_id"),
                            responses.c.status.in_([bindparam("a0"), bindparam("a1"), bindparam("a2")])),
    _FINISH_COLUMNS,
)
_DELETE_OUTPUT = Prepared(delete(response_items).where(response_items.c.response_id == bindparam("b_id"),
                                                       response_items.c.kind == bindparam("b_kind")))


def _response_row(body: dict[str, Any], tenant: Tenant, lease_owner: str | None = None,
                  lease_expires_at: float | None = None) -> dict[str, Any]:
    """Every column of a new ``responses`` row (one statement shape, one compiled form); a queued
    job's ``request`` and ``prepared`` are filled in by ``create``."""
    return {"id": body["id"], "owner": check_tenant(tenant).principal, "request": None, "prepared": None,
            "lease_owner": lease_owner, "lease_expires_at": lease_expires_at, "cancel_requested": False,
            **_row_values(body)}


def _item_rows(response_id: str, kind: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"response_id": response_id, "kind": kind, "position": i, "item_id": it["id"], "data": dumps(it)}
            for i, it in enumerate(items)]


def _insert_items(conn: Connection, response_id: str, kind: str, items: list[dict[str, Any]]) -> None:
    if items:
        _INSERT_ITEMS.executemany(conn, _item_rows(response_id, kind, items))


def _insert_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        _INSERT_ITEMS.executemany(conn, rows)


def _insert_events(conn: Connection, response_id: str, events: list[tuple[int, str]]) -> None:
    conn.execute(insert(response_events),
                 [{"response_id": response_id, "sequence_number": n, "data": d} for n, d in events])


def _store_outcome(conn: Connection, body: dict[str, Any], conversation: ConversationAppend | None) -> None:
    """A finished response's output items, and what it appends to its conversation."""
    _insert_items(conn, body["id"], "output", body["output"])
    if conversation is not None:
        conv_store.append_items(conn, conversation.conversation_id, conversation.items)
        conv_store.release_lock(conn, conversation.conversation_id, conversation.lock_holder)


def _visible(scope: Scope) -> Any:
    """The rows ``scope`` may see: one tenant's, or (``ACROSS_TENANTS``) every row."""
    tenant = check_scope(scope)
    return responses.c.owner == tenant.principal if tenant is not None else literal(True)


def _load(conn: Connection, ids: list[str], scope: Scope) -> list[StoredResponse]:
    """Read responses with their output items in two queries, whatever the number of ids."""
    if not ids:
        return []
    query = select(
        responses.c.body, responses.c.owner, responses.c.background, responses.c.request,
        responses.c.cancel_requested, responses.c.prepared,
    ).where(responses.c.id.in_(ids), _visible(scope))
    rows = conn.execute(query).all()
    if not rows:
        return []
    outputs: dict[str, list[dict[str, Any]]] = {}
    item_rows = conn.execute(
        select(response_items.c.response_id, response_items.c.data)
        .where(response_items.c.response_id.in_(ids), response_items.c.kind == "output")
        .order_by(response_items.c.response_id, response_items.c.position)
    )
    for r in item_rows:
        outputs.setdefault(r.response_id, []).append(loads(r.data))
    result = []
    for row in rows:
        body = loads(row.body)
        body["output"] = outputs.get(body["id"], [])
        result.append(
            StoredResponse(
                body=body,
                tenant=Tenant(row.owner),
                background=bool(row.background),
                request=loads(row.request) if row.request else None,
                cancel_requested=bool(row.cancel_requested),
                prepared=loads(row.prepared) if row.prepared else None,
            )
        )
    return result


class ResponseStore:
    """``lease_owner`` is this replica's incarnation: responses it creates carry a lease in its
    name, renewed while it runs them, so another replica can settle them if it dies."""

    def __init__(self, db: Database, lease_owner: str | None = None, lease_seconds: float = 30.0):
        self.db = db
        self.lease_owner = lease_owner
        self.lease_seconds = lease_seconds

    async def create(
        self,
        body: dict[str, Any],
        tenant: Tenant,
        input_items: list[dict[str, Any]],
        request: dict[str, Any] | None = None,
        *,
        leased: bool = True,
        queued: QueuedJob | None = None,
    ) -> None:
        """Insert a new response with its input items (and ``request``: what of the request is
        kept with it). ``leased`` (the default) puts it under this replica's lease, renewed by the
        run (``services/leases.py``). A background response is created with its ``queued`` job
        (the whole request, its first events); one that waits for whichever replica has room is
        created with ``leased=False``, which wakes the replicas."""
        lease_owner = self.lease_owner if leased else None
        row = _response_row(body, tenant, lease_owner, time.time() + self.lease_seconds if lease_owner else None)
        response_id = body["id"]
        inline = queued is None and small(input_items)
        # Encoded now, outside the write transaction (see ``payload.py``).
        items = _item_rows(response_id, "input", input_items)
        if request is not None:
            row["request"] = dumps(request)
        if queued is not None:
            row["request"] = dumps(queued.request)
            row["prepared"] = dumps(queued.prepared) if queued.prepared is not None else None

        def txn(conn: Connection) -> None:
            _INSERT_RESPONSE.execute(conn, row)
            _insert_rows(conn, items)
            if queued is not None:
                _insert_events(conn, response_id, queued.events)
                if queued.conversation_lock is not None:  # nobody renews it while it waits
                    conversation_id, until = queued.conversation_lock
                    conn.execute(update(conversations)
                                 .where(conversations.c.id == conversation_id, conversations.c.locked_by == response_id)
                                 .values(locked_until=until))
                if not leased:
                    notify(conn, QUEUE, response_id)

        await self.db.write(txn, inline=inline)

    async def finish(
        self,
        body: dict[str, Any],
        *,
        conversation: ConversationAppend | None = None,
        only_if_active: bool = False,
        events: list[tuple[int, str]] | None = None,
        drafts: bool = False,
    ) -> bool:
        """Store the final state and output items (and the conversation append) atomically.

        With ``only_if_active`` the write happens only while the stored row is still queued or in
        progress, so a cancel that landed first wins; a run that stops because it was cancelled
        may still write its partial output over the ``cancelled`` row. Returns whether the write
        happened. A background response stores its last ``events`` (its terminal event included)
        in the same transaction, and wakes its followers. ``drafts``: the run's lease kept partial
        output, which goes.
        """
        response_id = body["id"]
        background = bool(body.get("background"))

        def txn(conn: Connection) -> bool:
            values = {"b_id": response_id, "lease_owner": None, "lease_expires_at": None, **_row_values(body)}
            if only_if_active:
                allowed = (*ACTIVE_STATUSES, "cancelled") if body["status"] == "cancelled" else ACTIVE_STATUSES
                changed = _FINISH_IF_ACTIVE.execute(conn, {**values, "a0": allowed[0], "a1": allowed[1],
                                                           "a2": allowed[-1]})
            else:
                changed = _FINISH.execute(conn, values)
            if changed == 0:
                return False
            _DELETE_OUTPUT.execute(conn, {"b_id": response_id, "b_kind": "output"})
            if drafts:
                _DELETE_OUTPUT.execute(conn, {"b_id": response_id, "b_kind": "draft"})
            _store_outcome(conn, body, conversation)
            if events:
                _insert_events(conn, response_id, events)
            if background:
                notify(conn, EVENTS, response_id)
            return True

        fits = small(body["output"], conversation.items if conversation is not None else None)
        return await self.db.write(txn, inline=fits)

    async def get(self, response_id: str, scope: Scope) -> StoredResponse | None:
        found = await self.db.read(lambda conn: _load(conn, [response_id], scope))
        return found[0] if found else None

    async def status(self, response_id: str) -> str | None:
        query = select(responses.c.status).where(responses.c.id == response_id)
        return await self.db.read(lambda conn: conn.execute(query).scalar())

    async def input_items(self, response_id: str) -> list[dict[str, Any]]:
        query = (
            select(response_items.c.data)
            .where(response_items.c.response_id == response_id, response_items.c.kind == "input")
            .order_by(response_items.c.position)
        )
        return await self.db.read(lambda conn: [loads(r.data) for r in conn.execute(query)])

    async def exists(self, response_id: str, tenant: Tenant) -> bool:
        query = select(literal(1)).where(responses.c.id == response_id, _visible(check_tenant(tenant)))
        return await self.db.read(lambda conn: conn.execute(query).first() is not None)

    async def delete(self, response_id: str, tenant: Tenant) -> bool:
        query = delete(responses).where(responses.c.id == response_id, _visible(check_tenant(tenant)))

        def txn(conn: Connection) -> bool:
            if conn.execute(query).rowcount == 0:
                return False
            conn.execute(delete(response_items).where(response_items.c.response_id == response_id))
            conn.execute(delete(response_events).where(response_events.c.response_id == response_id))
            return True

        return await self.db.write(txn)

    async def list_input_items(
        self, response_id: str, after: str | None, limit: int, order: Order
    ) -> Page | None:
        """Input items of one response; None when ``after`` names no item of it."""
        where = and_(response_items.c.response_id == response_id, response_items.c.kind == "input")

        def txn(conn: Connection) -> Page | None:
            after_pos = None
            if after is not None:
                after_pos = conn.execute(
                    select(func.min(response_items.c.position)).where(where, response_items.c.item_id == after)
                ).scalar()
                if after_pos is None:
                    return None
            query = paginate(select(response_items.c.data).where(where), response_items.c.position, order,
                             after_pos, limit)
            return page_of([loads(r.data) for r in conn.execute(query)], limit)

        return await self.db.read(txn)

    async def list_responses(
        self, tenant: Tenant, after: str | None, limit: int, order: Order, model: str | None,
        metadata: dict[str, str] | None = None,
    ) -> Page | None:
        """None when ``after`` names no response visible to ``tenant``. ``metadata``: only responses
        whose metadata holds each of these keys with that value."""
        visible = _visible(check_tenant(tenant))

        def txn(conn: Connection) -> Page | None:
            after_seq = None
            if after is not None:
                after_seq = conn.execute(select(responses.c.seq).where(responses.c.id == after, visible)).scalar()
                if after_seq is None:
                    return None
            base = select(responses.c.id).where(visible)
            if model is not None:
                base = base.where(responses.c.model == model)
            if metadata:
                base = base.where(metadata_matches(responses.c.body, metadata, path="metadata",
                                                   postgres=self.db.is_postgres))
            ids = [r.id for r in conn.execute(paginate(base, responses.c.seq, order, after_seq, limit))]
            page_ids = ids[:limit]
            found = {s.body["id"]: s for s in _load(conn, page_ids, tenant)}
            return Page(data=[found[i].body for i in page_ids if i in found], has_more=len(ids) > limit)

        return await self.db.read(txn)

    async def chain_items(self, response_id: str, tenant: Tenant) -> list[dict[str, Any]] | None:
        """Every input and output item of ``response_id`` and its ancestors, oldest first.

        One recursive query finds the chain, one reads its items. None if the id is unknown (or
        belongs to another principal).
        """
        start = select(responses.c.id, responses.c.previous_response_id, literal(0).label("depth")).where(
            responses.c.id == response_id, _visible(check_tenant(tenant))
        )
        chain = start.cte("chain", recursive=True)
        parent = responses.alias("parent")
        chain = chain.union_all(
            select(parent.c.id, parent.c.previous_response_id, (chain.c.depth + 1).label("depth")).where(
                parent.c.id == chain.c.previous_response_id
            )
        )

        def txn(conn: Connection) -> list[dict[str, Any]] | None:
            rows = conn.execute(select(chain.c.id, chain.c.depth)).all()
            if not rows:
                return None
            depth = {r.id: r.depth for r in rows}
            items = conn.execute(
                select(response_items.c.response_id, response_items.c.kind, response_items.c.data).where(
                    response_items.c.response_id.in_(list(depth)), response_items.c.kind.in_(("input", "output"))
                )
                .order_by(response_items.c.response_id, response_items.c.kind, response_items.c.position)
            )
            grouped = sorted(
                items.all(), key=lambda r: (-depth[r.response_id], 0 if r.kind == "input" else 1)
            )
            return [loads(r.data) for r in grouped]

        return await self.db.read(txn)

    # -- background-stream events -------------------------------------------------------------

    async def add_events(self, response_id: str, events: list[tuple[int, str]]) -> None:
        """Append a background response's events and wake its followers, on every replica."""
        def txn(conn: Connection) -> None:
            _insert_events(conn, response_id, events)
            notify(conn, EVENTS, response_id)

        await self.db.write(txn)

    async def events_after(self, response_id: str, after: int) -> list[tuple[int, str]]:
        query = (
            select(response_events.c.sequence_number, response_events.c.data)
            .where(response_events.c.response_id == response_id, response_events.c.sequence_number > after)
            .order_by(response_events.c.sequence_number)
        )
        return await self.db.read(lambda conn: [(r.sequence_number, r.data) for r in conn.execute(query)])
