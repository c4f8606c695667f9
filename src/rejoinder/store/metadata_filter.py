"""Filters on the ``metadata`` object stored inside a JSON text column, for SQLite and PostgreSQL.

Keys and values are bound parameters on both (SQLite walks the object with ``json_each``;
PostgreSQL reads it with ``json_extract_path_text``), so a key holding quotes, dots or commas
matches literally. No index serves these: they scan the rows the other conditions leave (one
principal's), which suits a console's search, not a hot path.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ColumnElement, and_, cast, exists, func, true


def metadata_matches(column: Any, metadata: dict[str, str], *, path: str | None, postgres: bool) -> ColumnElement[bool]:
    """``column`` (JSON text) holds, at ``path`` (None: the top level), every key with its value."""
    if not metadata:
        return true()
    conditions: list[ColumnElement[bool]] = []
    for i, (key, value) in enumerate(sorted(metadata.items())):
        if postgres:
            keys = (path, key) if path else (key,)
            conditions.append(func.json_extract_path_text(cast(column, JSON), *keys) == value)
        else:
            args = (column, f"$.{path}") if path else (column,)
            each = func.json_each(*args).table_valued("key", "value").alias(f"metadata_{i}")
            conditions.append(exists().select_from(each).where(each.c.key == key, each.c.value == value))
    return and_(*conditions)
