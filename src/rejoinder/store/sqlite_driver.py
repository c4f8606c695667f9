"""Which sqlite3 module SQLite runs on, and loading sqlite-vec into each connection.

Vector stores rank with sqlite-vec, a loadable extension. Many Pythons (pyenv's and python.org's
default builds, macOS's) compile their ``sqlite3`` without extension loading; there the
``sqlean-py`` wheel stands in: the same module API, on its own SQLite built with it. A Python
whose ``sqlite3`` can load extensions keeps using it.

Every connection a process opens to the database file must go through ``SQLITE``: two SQLite
libraries in one process do not see each other's POSIX locks (fcntl locks are per process), so a
lock taken through one would not stop a write through the other.
"""

from __future__ import annotations

import logging
import sqlite3
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)
_warned = False


def sqlite_module() -> ModuleType:
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        import sqlean  # type: ignore[import-untyped]
    except ImportError:
        log.warning("this Python's sqlite3 cannot load extensions and sqlean-py is not installed: "
                    "vector stores will be unavailable on SQLite (pip install sqlean-py)")
        return sqlite3
    return sqlean  # type: ignore[no-any-return]


SQLITE: ModuleType = sqlite_module()


def load_vector_extension(conn: Any) -> bool:
    """Load sqlite-vec's functions (``vec_distance_cosine``...) into a driver connection."""
    global _warned
    try:
        import sqlite_vec

        conn.enable_load_extension(True)
        try:
            sqlite_vec.load(conn)
        finally:
            conn.enable_load_extension(False)
        return True
    except (ImportError, AttributeError, SQLITE.Error) as exc:
        if not _warned:
            _warned = True
            log.warning("sqlite-vec could not be loaded (%r): vector stores are unavailable", exc)
        return False
