"""PostgreSQL specifics: concurrent migrations, and the job queue under concurrent claimers."""

from __future__ import annotations

import asyncio
import json
import time

from sqlalchemy import insert, select

from rejoinder.store.db import Database
from rejoinder.store.leases import LeaseStore
from rejoinder.store.migrations import migrate
from rejoinder.store.schema import LATEST_VERSION, responses, schema_version


def test_replicas_migrate_the_same_database_at_once(pg_url):
    async def main() -> None:
        dbs = [Database(pg_url) for _ in range(4)]
        try:
            assert await asyncio.gather(*(migrate(db) for db in dbs)) == [LATEST_VERSION] * 4
            versions = await dbs[0].read(lambda conn: conn.execute(select(schema_version.c.version)).scalars().all())
            assert versions == [LATEST_VERSION]
        finally:
            for db in dbs:
                await db.dispose()

    asyncio.run(main())


def test_skip_locked_claims_each_job_exactly_once(pg_url):
    async def main() -> None:
        dbs = [Database(pg_url) for _ in range(4)]
        try:
            await migrate(dbs[0])
            await dbs[0].write(lambda conn: conn.execute(insert(responses), [
                {"id": f"resp_{i}", "owner": "o", "status": "queued", "model": "m",
                 "created_at": time.time(),
                 "background": True, "body": "{}", "cancel_requested": False} for i in range(60)
            ]))
            stores = [LeaseStore(db, f"w{i}/x", 30) for i, db in enumerate(dbs)]

            async def worker(store: LeaseStore) -> list[str]:
                got: list[str] = []
                while batch := await store.claim(3):
                    got += batch
                return got

            claimed = await asyncio.gather(*(worker(s) for s in stores))
            flat = [i for c in claimed for i in c]
            assert sorted(flat) == sorted(f"resp_{i}" for i in range(60))  # no job twice, none lost
            owners = dict(await dbs[0].read(
                lambda conn: conn.execute(select(responses.c.id, responses.c.lease_owner)).all()))
            for store, ids in zip(stores, claimed, strict=True):
                assert all(owners[i] == store.owner for i in ids)
        finally:
            for db in dbs:
                await db.dispose()

    asyncio.run(main())


def test_expired_leases_are_settled_once(pg_url):
    async def main() -> None:
        dbs = [Database(pg_url) for _ in range(3)]
        try:
            await migrate(dbs[0])
            past = time.time() - 10
            rows = [{"id": f"fg_{i}", "background": False, "status": "in_progress"} for i in range(10)]
            rows += [{"id": f"bgq_{i}", "background": True, "status": "queued"} for i in range(5)]
            rows += [{"id": f"bgr_{i}", "background": True, "status": "in_progress"} for i in range(5)]
            await dbs[0].write(lambda conn: conn.execute(insert(responses), [
                {**r, "owner": "o", "model": "m", "created_at": past, "body": json.dumps({"id": r["id"]}),
                 "cancel_requested": False, "lease_owner": "dead/1", "lease_expires_at": past} for r in rows
            ]))
            stores = [LeaseStore(db, f"live{i}/x", 30) for i, db in enumerate(dbs)]
            results = await asyncio.gather(*(s.recover_expired() for s in stores))
            failed = sorted(i for r in results for i in r.failed)
            requeued = sorted(i for r in results for i in r.requeued)
            assert failed == sorted([f"fg_{i}" for i in range(10)] + [f"bgr_{i}" for i in range(5)])
            assert requeued == sorted(f"bgq_{i}" for i in range(5))
            statuses = dict(await dbs[0].read(
                lambda conn: conn.execute(select(responses.c.id, responses.c.status)).all()))
            assert all(statuses[i] == "failed" for i in failed)
            assert all(statuses[i] == "queued" for i in requeued)
        finally:
            for db in dbs:
                await db.dispose()

    asyncio.run(main())
