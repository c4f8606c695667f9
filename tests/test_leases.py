"""Leases and their recovery, and tenant scoping, on the suite's storage (SQLite, or PostgreSQL in the
second pass)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from rejoinder.store.conversations import ConversationStore
from rejoinder.store.db import Database
from rejoinder.store.leases import LeaseStore, Recovered
from rejoinder.store.migrations import migrate
from rejoinder.store.responses import ResponseStore
from rejoinder.store.schema import responses
from rejoinder.tenant import ACROSS_TENANTS, Tenant
from tests.conftest import storage_url


def test_a_replica_never_settles_its_own_live_responses(tmp_path: Path) -> None:
    """A lapsed lease of this replica's own means it stalled (a renewal slower than the lease), not
    that it died: it still runs the turn and will store it. Another replica settles it."""

    url = storage_url(tmp_path)

    async def main() -> None:
        db = Database(url)
        try:
            await migrate(db)
            past = time.time() - 10
            await db.write(lambda conn: conn.execute(insert(responses), [
                {"id": rid, "owner": "o", "model": "m", "status": "in_progress", "background": False,
                 "created_at": past, "body": json.dumps({"id": rid}), "cancel_requested": False,
                 "lease_owner": owner, "lease_expires_at": past}
                for rid, owner in (("resp_mine", "a/1"), ("resp_theirs", "b/1"))
            ]))
            assert (await LeaseStore(db, "a/1", 30).recover_expired()).failed == ["resp_theirs"]
            assert (await LeaseStore(db, "a/1", 30).recover_expired()).failed == []
            assert (await LeaseStore(db, "c/1", 30).recover_expired()).failed == ["resp_mine"]
            statuses = dict(await db.read(lambda conn: conn.execute(select(responses.c.id, responses.c.status)).all()))
            assert statuses == {"resp_mine": "failed", "resp_theirs": "failed"}
        finally:
            await db.dispose()

    asyncio.run(main())


def _row(rid: str, lease_owner: str, expires: float, status: str = "in_progress", background: bool = False,
         conversation_id: str | None = None) -> dict[str, object]:
    return {"id": rid, "owner": "o", "model": "m", "status": status, "background": background,
            "created_at": expires, "body": json.dumps({"id": rid, "status": status}), "cancel_requested": False,
            "lease_owner": lease_owner, "lease_expires_at": expires, "conversation_id": conversation_id}


def test_a_replica_settles_its_own_lapsed_lease_when_no_task_of_its_runs_it(tmp_path: Path) -> None:
    """Given the runs it knows are alive, a replica fails its own lapsed responses that are not
    among them (their task is gone), keeps the live ones (a stall), and requeues nothing twice."""
    url = storage_url(tmp_path)

    async def main() -> None:
        db = Database(url)
        try:
            await migrate(db)
            past = time.time() - 10
            await db.write(lambda conn: conn.execute(insert(responses), [
                _row("resp_live", "a/1", past), _row("resp_gone", "a/1", past),
                _row("resp_queued", "a/1", past, status="queued", background=True),
                _row("resp_fresh", "a/1", time.time() + 60),
            ]))
            done = await LeaseStore(db, "a/1", 30).recover_expired(live=["resp_live", "resp_fresh"])
            assert (done.failed, done.requeued) == (["resp_gone"], ["resp_queued"])
            statuses = dict(await db.read(lambda conn: conn.execute(select(responses.c.id, responses.c.status)).all()))
            assert statuses == {"resp_live": "in_progress", "resp_gone": "failed", "resp_queued": "queued",
                                "resp_fresh": "in_progress"}
        finally:
            await db.dispose()

    asyncio.run(main())


def test_renewals_keep_partial_output_that_recovery_turns_into_the_output(tmp_path: Path) -> None:
    """A renewal with drafts replaces the previous ones; a recovered response's output is the last
    drafts, its conversation lock goes, and a chain through it never reads drafts as output."""
    url = storage_url(tmp_path)

    def message(i: int, text: str) -> dict[str, object]:
        return {"type": "message", "id": f"msg_{i}", "role": "assistant", "status": "in_progress",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}

    async def main() -> None:
        db = Database(url)
        try:
            await migrate(db)
            conversations = ConversationStore(db)
            await conversations.create("conv_1", Tenant("o"), {}, [])
            await db.write(lambda conn: conn.execute(insert(responses), [
                _row("resp_1", "dead/1", time.time() + 60, conversation_id="conv_1")]))
            assert await conversations.try_lock("conv_1", Tenant("o"), "resp_1", 60)
            dead = LeaseStore(db, "dead/1", 30)
            assert await dead.renew("resp_1", row=True, conversation_id="conv_1", drafts=[message(0, "Hel")])
            assert await dead.renew("resp_1", row=True, conversation_id="conv_1",
                                    drafts=[message(0, "Hello"), message(1, "wor")])
            store = ResponseStore(db)
            assert await store.chain_items("resp_1", Tenant("o")) == []  # drafts are not output
            assert await LeaseStore(db, "b/1", 30).recover_expired() == Recovered([], [])  # not lapsed yet
            await db.write(lambda conn: conn.execute(update(responses).values(lease_expires_at=time.time() - 1)))
            assert (await LeaseStore(db, "b/1", 30).recover_expired()).failed == ["resp_1"]
            stored = await store.get("resp_1", ACROSS_TENANTS)
            assert stored is not None and stored.body["status"] == "failed"
            assert [i["content"][0]["text"] for i in stored.body["output"]] == ["Hello", "wor"]
            assert await conversations.try_lock("conv_1", Tenant("o"), "resp_2", 60)  # released with it
            assert not await dead.renew("resp_1", row=True, conversation_id=None)  # no longer its lease
        finally:
            await db.dispose()

    asyncio.run(main())


def test_a_store_call_without_a_tenant_is_refused(tmp_path: Path) -> None:
    """``None`` (or a bare principal name) never means "every tenant": only ACROSS_TENANTS does."""
    url = storage_url(tmp_path)

    async def main() -> None:
        db = Database(url)
        try:
            await migrate(db)
            store, conversations = ResponseStore(db), ConversationStore(db)
            await conversations.create("conv_1", Tenant("alice"), {}, [])
            for call in (lambda: store.get("resp_1", None), lambda: store.chain_items("resp_1", "alice"),
                         lambda: store.list_responses(None, None, 20, "desc", None),
                         lambda: conversations.get("conv_1", None), lambda: conversations.delete("conv_1", "alice"),
                         lambda: LeaseStore(db, "a/1", 30).request_cancel("resp_1", None)):
                with pytest.raises(TypeError):
                    await call()  # type: ignore[no-untyped-call]
            with pytest.raises(TypeError):
                Tenant(None)  # type: ignore[arg-type]
            assert await conversations.get("conv_1", Tenant("bob")) is None
            assert await conversations.get("conv_1", Tenant("alice")) is not None
        finally:
            await db.dispose()

    asyncio.run(main())
