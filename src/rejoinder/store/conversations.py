"""Conversations and their items.

Items are kept in ``position`` order per conversation, so listing a page and building a model
context read one index range and nothing else. A response running on a conversation holds its
lock (``locked_by`` / ``locked_until``) until it commits; a second one is refused, as OpenAI does.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from rejoinder.errors import InvalidRequest
from rejoinder.store.db import Database
from rejoinder.store.jsonutil import dumps, loads
from rejoinder.store.pagination import Order, Page, page_of, paginate
from rejoinder.store.schema import conversation_items, conversations


def conversation_body(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "conversation",
        "created_at": int(row.created_at),
        "metadata": loads(row.metadata),
    }


async def append_items(conn: AsyncConnection, conversation_id: str, items: list[dict[str, Any]]) -> None:
    """Append at the end, reserving positions with one atomic UPDATE (a row lock on PostgreSQL)."""
    if not items:
        return
    end = (
        await conn.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(next_position=conversations.c.next_position + len(items))
            .returning(conversations.c.next_position)
        )
    ).scalar_one()
    start = end - len(items)
    try:
        await conn.execute(
            insert(conversation_items),
            [
                {"conversation_id": conversation_id, "position": start + i, "item_id": it["id"], "data": dumps(it)}
                for i, it in enumerate(items)
            ],
        )
    except IntegrityError as exc:
        raise InvalidRequest(
            "An item with the same id already exists in this conversation.", param="items", code="duplicate_item"
        ) from exc


async def release_lock(conn: AsyncConnection, conversation_id: str, holder: str) -> None:
    await conn.execute(
        update(conversations)
        .where(conversations.c.id == conversation_id, conversations.c.locked_by == holder)
        .values(locked_by=None, locked_until=None)
    )


class ConversationStore:
    def __init__(self, db: Database):
        self.db = db

    async def create(self, conversation_id: str, owner: str, metadata: dict[str, str],
                     items: list[dict[str, Any]]) -> dict[str, Any]:
        async with self.db.write() as conn:
            now = time.time()
            await conn.execute(
                insert(conversations).values(
                    id=conversation_id, owner=owner, created_at=now, metadata=dumps(metadata), next_position=0
                )
            )
            await append_items(conn, conversation_id, items)
            row = (await conn.execute(select(conversations).where(conversations.c.id == conversation_id))).one()
            return conversation_body(row)

    async def get(self, conversation_id: str, owner: str | None) -> dict[str, Any] | None:
        async with self.db.read() as conn:
            row = await self._row(conn, conversation_id, owner)
            return conversation_body(row) if row else None

    @staticmethod
    async def _row(conn: AsyncConnection, conversation_id: str, owner: str | None) -> Any:
        query = select(conversations).where(conversations.c.id == conversation_id)
        if owner is not None:
            query = query.where(conversations.c.owner == owner)
        return (await conn.execute(query)).first()

    async def update_metadata(self, conversation_id: str, owner: str | None,
                              metadata: dict[str, str]) -> dict[str, Any] | None:
        async with self.db.write() as conn:
            if await self._row(conn, conversation_id, owner) is None:
                return None
            await conn.execute(
                update(conversations).where(conversations.c.id == conversation_id).values(metadata=dumps(metadata))
            )
            return conversation_body(await self._row(conn, conversation_id, owner))

    async def delete(self, conversation_id: str, owner: str | None) -> bool:
        async with self.db.write() as conn:
            query = delete(conversations).where(conversations.c.id == conversation_id)
            if owner is not None:
                query = query.where(conversations.c.owner == owner)
            if (await conn.execute(query)).rowcount == 0:
                return False
            await conn.execute(delete(conversation_items).where(conversation_items.c.conversation_id == conversation_id))
            return True

    async def add_items(self, conversation_id: str, owner: str | None,
                        items: list[dict[str, Any]]) -> bool:
        async with self.db.write() as conn:
            if await self._row(conn, conversation_id, owner) is None:
                return False
            await append_items(conn, conversation_id, items)
            return True

    async def list_items(self, conversation_id: str, after: str | None, limit: int, order: Order) -> Page | None:
        """A page of items; None when ``after`` is not an item of this conversation."""
        where = conversation_items.c.conversation_id == conversation_id
        async with self.db.read() as conn:
            after_pos = None
            if after is not None:
                after_pos = (
                    await conn.execute(
                        select(conversation_items.c.position).where(where, conversation_items.c.item_id == after)
                    )
                ).scalar()
                if after_pos is None:
                    return None
            query = paginate(select(conversation_items.c.data).where(where), conversation_items.c.position,
                             order, after_pos, limit)
            rows = [loads(r.data) for r in await conn.execute(query)]
        return page_of(rows, limit)

    async def get_item(self, conversation_id: str, item_id: str) -> dict[str, Any] | None:
        async with self.db.read() as conn:
            data = (
                await conn.execute(
                    select(conversation_items.c.data).where(
                        conversation_items.c.conversation_id == conversation_id,
                        conversation_items.c.item_id == item_id,
                    )
                )
            ).scalar()
            return loads(data) if data else None

    async def delete_item(self, conversation_id: str, item_id: str) -> bool:
        async with self.db.write() as conn:
            result = await conn.execute(
                delete(conversation_items).where(
                    conversation_items.c.conversation_id == conversation_id, conversation_items.c.item_id == item_id
                )
            )
            return result.rowcount > 0

    async def all_items(self, conversation_id: str) -> list[dict[str, Any]]:
        """The whole conversation in order: the model's context. Reads this conversation's rows only."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(conversation_items.c.data)
                .where(conversation_items.c.conversation_id == conversation_id)
                .order_by(conversation_items.c.position)
            )
            return [loads(r.data) for r in rows]

    async def try_lock(self, conversation_id: str, holder: str, seconds: float) -> bool:
        """Take the conversation for one response; False if another response holds it."""
        now = time.time()
        async with self.db.write() as conn:
            result = await conn.execute(
                update(conversations)
                .where(
                    and_(
                        conversations.c.id == conversation_id,
                        or_(conversations.c.locked_by.is_(None), conversations.c.locked_until < now),
                    )
                )
                .values(locked_by=holder, locked_until=now + seconds)
            )
            return result.rowcount > 0

    async def unlock(self, conversation_id: str, holder: str) -> None:
        async with self.db.write() as conn:
            await release_lock(conn, conversation_id, holder)
