"""Cursor pagination shared by every list endpoint: ``after`` an id, ``limit``, ``order``, exact ``has_more``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select

Order = Literal["asc", "desc"]


@dataclass(frozen=True)
class Page:
    data: list[dict[str, Any]]
    has_more: bool

    def body(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": self.data,
            "first_id": self.data[0]["id"] if self.data else None,
            "last_id": self.data[-1]["id"] if self.data else None,
            "has_more": self.has_more,
        }


def paginate(query: Select, key: ColumnElement, order: Order, after_key: Any | None, limit: int) -> Select:
    """Order by ``key``, start after ``after_key``, fetch one extra row to know ``has_more``."""
    if after_key is not None:
        query = query.where(key > after_key if order == "asc" else key < after_key)
    return query.order_by(key.asc() if order == "asc" else key.desc()).limit(limit + 1)


def page_of(rows: list[dict[str, Any]], limit: int) -> Page:
    return Page(data=rows[:limit], has_more=len(rows) > limit)
