"""A turn's hot statements: compiled once, and on SQLite run straight on the driver's cursor.

SQLAlchemy's execution layer (parameter processing, result set-up, event dispatch) costs more per
statement than SQLite's own work on a turn's few small rows: ~100 µs of a ~150 µs statement on
these 2 vCPUs, and a stored turn runs four or five of them on the event loop (see ``db.py``). The
statements a turn always writes are compiled here, once, to SQLite's SQL with named parameters, and
executed on the connection's sqlite3 driver, inside whatever transaction is open there: the loop's
own (``db._InlineWriter``) or, on the writer thread, SQLAlchemy's. Neither commits nor rolls back
here. On PostgreSQL the same statement objects run through SQLAlchemy as usual.

Only for statements whose every parameter the caller passes by name, and whose column types need no
conversion on SQLite (text, numbers, booleans): nothing here applies column defaults or type
processors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.dml import UpdateBase

_SQLITE = sqlite.dialect(paramstyle="named")


class Prepared:
    """One statement. ``columns``: the columns an INSERT fills or an UPDATE sets, by name."""

    def __init__(self, statement: UpdateBase, columns: Sequence[str] = ()):
        self.statement = statement
        compiled = statement.compile(dialect=_SQLITE, column_keys=list(columns) or None)
        self.sqlite_sql = compiled.string
        self.parameters = frozenset(compiled.binds)  # what a call must pass (checked by the tests)

    def execute(self, conn: Connection, params: dict[str, Any]) -> int:
        """Run once; return the number of rows it changed."""
        if conn.dialect.name == "sqlite":
            return conn.connection.driver_connection.execute(self.sqlite_sql, params).rowcount  # type: ignore[union-attr]
        return conn.execute(self.statement, params).rowcount

    def executemany(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if conn.dialect.name == "sqlite":
            conn.connection.driver_connection.executemany(self.sqlite_sql, rows)  # type: ignore[union-attr]
        else:
            conn.execute(self.statement, rows)
