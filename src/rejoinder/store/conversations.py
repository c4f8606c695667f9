"""Conversations and their items.

Items are kept in ``position`` order per conversation; the primary key (conversation_id, position)
makes listing a page and building a model context one index range scan that reads no other
conversation's rows. Positions are reserved by one atomic UPDATE of ``next_position``, so
concurrent appends (items.create, finished responses) never interleave: each batch is contiguous.

A response running on a conversation holds its lock (``locked_by`` / ``locked_until``) until it
commits; a second one is refused, as OpenAI does. The lock expires so a crashed process cannot
wedge a conversation forever.

Every method takes the request's ``Tenant`` and treats another principal's conversation as
missing; refusals are the store's own errors (``store/errors.py``).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from rejoinder.store.db import Database
from rejoinder.store.errors import DuplicateItem, Missing, UnknownCursor
from rejoinder.store.jsonutil import dumps, loads
from rejoinder.store.metadata_filter import metadata_matches
from rejoinder.store.pagination import Order, Page, page_of, paginate
from rejoinder.store.schema import conversation_items, conversations
from rejoinder.tenant import Tenant, check_tenant


def conversation_body(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "conversation",
        "created_at": int(row.created_at),
        "metadata": loads(row.metadata),
    }


def conversation_not_found(conversation_id: str, param: str | None = None) -> Missing:
    return Missing("Conversation", conversation_id, param=param)


def item_not_found(item_id: str) -> Missing:
    return Missing("Item", item_id)


def append_items(conn: Connection, conversation_id: str, items: list[dict[str, Any]]) -> bool:
    """Append at the end, reserving positions with one atomic UPDATE (a row lock on PostgreSQL).

    Returns False when the conversation no longer exists (deleted while a response ran): the
    caller's transaction goes on without it rather than failing the response at commit time.
    """
    if not items:
        return True
    end = conn.execute(
        update(conversations)
        .where(conversations.c.id == conversation_id)
        .values(next_position=conversations.c.next_position + len(items))
        .returning(conversations.c.next_position)
    ).scalar()
    if end is None:
        return False
    start = end - len(items)
    try:
        conn.execute(
            insert(conversation_items),
            [
                {"conversation_id": conversation_id, "position": start + i, "item_id": it["id"], "data": dumps(it)}
                for i, it in enumerate(items)
            ],
        )
    except IntegrityError as exc:
        raise DuplicateItem() from exc
    return True


def release_lock(conn: Connection, conversation_id: str, holder: str) -> None:
    conn.execute(
        update(conversations)
        .where(conversations.c.id == conversation_id, conversations.c.locked_by == holder)
        .values(locked_by=None, locked_until=None)
    )


def _row(conn: Connection, conversation_id: str, tenant: Tenant) -> Any:
    query = select(conversations).where(conversations.c.id == conversation_id,
                                        conversations.c.owner == check_tenant(tenant).principal)
    return conn.execute(query).first()


def _require(conn: Connection, conversation_id: str, tenant: Tenant) -> Any:
    row = _row(conn, conversation_id, tenant)
    if row is None:
        raise conversation_not_found(conversation_id)
    return row


class ConversationStore:
    def __init__(self, db: Database):
        self.db = db

    async def create(self, conversation_id: str, tenant: Tenant, metadata: dict[str, str],
                     items: list[dict[str, Any]]) -> dict[str, Any]:
        """Create the conversation and its initial items in one transaction."""
        owner = check_tenant(tenant).principal

        def txn(conn: Connection) -> dict[str, Any]:
            conn.execute(
                insert(conversations).values(
                    id=conversation_id, owner=owner, created_at=time.time(), metadata=dumps(metadata), next_position=0,
                )
            )
            append_items(conn, conversation_id, items)
            return conversation_body(_row(conn, conversation_id, tenant))

        return await self.db.write(txn)

    async def list_conversations(self, tenant: Tenant, after: str | None, limit: int, order: Order,
                                 metadata: dict[str, str] | None = None) -> Page | None:
        """A page of ``tenant``'s conversations, newest first by default; None when ``after`` names
        none of them. ``metadata``: only those holding each key with that value."""
        visible = conversations.c.owner == check_tenant(tenant).principal

        def txn(conn: Connection) -> Page | None:
            after_seq = None
            if after is not None:
                after_seq = conn.execute(
                    select(conversations.c.seq).where(conversations.c.id == after, visible)
                ).scalar()
                if after_seq is None:
                    return None
            query = select(conversations).where(visible)
            if metadata:
                query = query.where(metadata_matches(conversations.c.metadata, metadata, path=None,
                                                     postgres=self.db.is_postgres))
            rows = conn.execute(paginate(query, conversations.c.seq, order, after_seq, limit)).all()
            return page_of([conversation_body(r) for r in rows], limit)

        return await self.db.read(txn)

    async def get(self, conversation_id: str, tenant: Tenant) -> dict[str, Any] | None:
        def txn(conn: Connection) -> dict[str, Any] | None:
            row = _row(conn, conversation_id, tenant)
            return conversation_body(row) if row else None

        return await self.db.read(txn)

    async def update_metadata(self, conversation_id: str, tenant: Tenant,
                              metadata: dict[str, str]) -> dict[str, Any]:
        def txn(conn: Connection) -> dict[str, Any]:
            row = _require(conn, conversation_id, tenant)
            conn.execute(
                update(conversations).where(conversations.c.id == conversation_id).values(metadata=dumps(metadata))
            )
            return {**conversation_body(row), "metadata": metadata}

        return await self.db.write(txn)

    async def delete(self, conversation_id: str, tenant: Tenant) -> None:
        """Delete the conversation and every item of it, atomically."""
        query = delete(conversations).where(conversations.c.id == conversation_id,
                                            conversations.c.owner == check_tenant(tenant).principal)

        def txn(conn: Connection) -> None:
            if conn.execute(query).rowcount == 0:
                raise conversation_not_found(conversation_id)
            conn.execute(delete(conversation_items).where(conversation_items.c.conversation_id == conversation_id))

        await self.db.write(txn)

    async def add_items(self, conversation_id: str, tenant: Tenant, items: list[dict[str, Any]]) -> None:
        def txn(conn: Connection) -> None:
            _require(conn, conversation_id, tenant)
            append_items(conn, conversation_id, items)

        await self.db.write(txn)

    async def list_items(self, conversation_id: str, tenant: Tenant, after: str | None, limit: int,
                         order: Order) -> Page:
        """A page of items in position order, with an exact ``has_more`` (one extra row is read)."""
        where = conversation_items.c.conversation_id == conversation_id

        def txn(conn: Connection) -> Page:
            _require(conn, conversation_id, tenant)
            after_pos = None
            if after is not None:
                after_pos = conn.execute(
                    select(conversation_items.c.position).where(where, conversation_items.c.item_id == after)
                ).scalar()
                if after_pos is None:
                    raise UnknownCursor(f"No item found with id '{after}' in conversation '{conversation_id}'.")
            query = paginate(select(conversation_items.c.data).where(where), conversation_items.c.position,
                             order, after_pos, limit)
            return page_of([loads(r.data) for r in conn.execute(query)], limit)

        return await self.db.read(txn)

    async def get_item(self, conversation_id: str, tenant: Tenant, item_id: str) -> dict[str, Any]:
        def txn(conn: Connection) -> dict[str, Any]:
            _require(conn, conversation_id, tenant)
            data = conn.execute(
                select(conversation_items.c.data).where(
                    conversation_items.c.conversation_id == conversation_id,
                    conversation_items.c.item_id == item_id,
                )
            ).scalar()
            if data is None:
                raise item_not_found(item_id)
            return loads(data)

        return await self.db.read(txn)

    async def delete_item(self, conversation_id: str, tenant: Tenant, item_id: str) -> dict[str, Any]:
        """Delete one item; returns the conversation (OpenAI's answer to this call)."""
        def txn(conn: Connection) -> dict[str, Any]:
            row = _require(conn, conversation_id, tenant)
            result = conn.execute(
                delete(conversation_items).where(
                    conversation_items.c.conversation_id == conversation_id, conversation_items.c.item_id == item_id
                )
            )
            if result.rowcount == 0:
                raise item_not_found(item_id)
            return conversation_body(row)

        return await self.db.write(txn)

    async def context_items(self, conversation_id: str, tenant: Tenant) -> list[dict[str, Any]] | None:
        """The whole conversation in order (the model's context); None if not visible to ``tenant``.

        One transaction, so the existence check and the items agree; reads this conversation's
        rows only (a primary-key range).
        """
        def txn(conn: Connection) -> list[dict[str, Any]] | None:
            if _row(conn, conversation_id, tenant) is None:
                return None
            rows = conn.execute(
                select(conversation_items.c.data)
                .where(conversation_items.c.conversation_id == conversation_id)
                .order_by(conversation_items.c.position)
            )
            return [loads(r.data) for r in rows]

        return await self.db.read(txn)

    async def try_lock(self, conversation_id: str, tenant: Tenant, holder: str, seconds: float) -> bool:
        """Take the conversation for one response; False if another response holds it.

        Raises ``Missing`` when the conversation is not visible to ``tenant``, so nobody can lock
        (or learn of) another principal's conversation. ``seconds``: how long the lock lasts
        unless renewed (a running turn's lease renews it; see ``services/leases.py``).
        """
        now = time.time()
        mine = and_(conversations.c.id == conversation_id, conversations.c.owner == check_tenant(tenant).principal)

        def txn(conn: Connection) -> bool:
            query = update(conversations).where(
                mine, or_(conversations.c.locked_by.is_(None), conversations.c.locked_until < now),
            )
            if conn.execute(query.values(locked_by=holder, locked_until=now + seconds)).rowcount > 0:
                return True
            if conn.execute(select(literal(1)).where(mine)).first() is None:
                raise conversation_not_found(conversation_id, param="conversation")
            return False

        return await self.db.write(txn, inline=True)

    async def unlock(self, conversation_id: str, holder: str) -> None:
        await self.db.write(lambda conn: release_lock(conn, conversation_id, holder), inline=True)
