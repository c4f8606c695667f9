"""Ingestion as a queue in the database: leases, retries, replicas, cancellation, a backend's
embeddings model, and a PostgreSQL without pgvector."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import insert, select, text, update

from rejoinder.store.db import Database
from rejoinder.store.jsonutil import dumps
from rejoinder.store.migrations import migrate
from rejoinder.store.schema import files, vector_store_files, vector_stores
from rejoinder.vectors import ingest
from rejoinder.vectors.chunking import AUTO, Chunk
from rejoinder.vectors.index import ChunkIndex
from rejoinder.vectors.queue import MAX_ATTEMPTS, IngestQueue
from rejoinder.vectors.search import Searcher
from tests import postgres
from tests.conftest import MODEL
from tests.vector_fixtures import client, vector_storage_url, wait_for


async def _seed(db: Database, n: int) -> None:
    def txn(conn: Any) -> None:
        conn.execute(insert(vector_stores).values(id="vs_1", owner="o", created_at=1.0, name="", metadata="{}",
                                                  last_active_at=1.0, embedding_model="m"))
        for i in range(n):
            conn.execute(insert(files).values(id=f"file-{i}", owner="o", created_at=1.0, filename=f"{i}.txt",
                                              purpose="assistants", bytes=1, complete=True))
            conn.execute(insert(vector_store_files).values(
                vector_store_id="vs_1", file_id=f"file-{i}", owner="o", created_at=1.0, status="in_progress",
                chunking_strategy=dumps(AUTO), usage_bytes=0, attempts=0))

    await db.write(txn)


async def _queue_db(url: str, files: int) -> tuple[Database, ChunkIndex]:
    """A migrated database with its chunk index and ``files`` files queued in store vs_1."""
    db = Database(url)
    await migrate(db)
    index = ChunkIndex(db)
    assert await index.ensure_schema() is None
    await _seed(db, files)
    return db, index


def test_replicas_claim_disjoint_jobs_and_take_over_lapsed_leases(tmp_path: Path) -> None:
    url = vector_storage_url(tmp_path)

    async def main() -> None:
        db, index = await _queue_db(url, 3)
        try:
            one, two = IngestQueue(db, index, "one/1", 30), IngestQueue(db, index, "two/1", 30)
            first, second = await asyncio.gather(one.claim(2), two.claim(2))
            claimed = [j.file_id for j in first + second]
            assert sorted(claimed) == ["file-0", "file-1", "file-2"]  # each job once
            assert not await one.has_work()
            # two's leases lapse (a dead replica): one takes its jobs over
            f = vector_store_files
            await db.write(lambda c: c.execute(update(f).where(f.c.lease_owner == "two/1").values(lease_expires_at=0)))
            taken = await one.claim(5)
            assert sorted(j.file_id for j in taken) == sorted(j.file_id for j in second)
            assert all(j.attempt == 2 for j in taken)
            # the dead replica's late write is refused; the live one's lands
            assert not await two.complete(second[0], [Chunk(0, "late", 1)], [[1.0, 0.0]], 10)
            assert await one.complete(taken[0], [Chunk(0, "hello", 1)], [[1.0, 0.0]], 10)
            row = await db.read(lambda c: c.execute(select(f.c.status, f.c.usage_bytes)
                                                    .where(f.c.file_id == taken[0].file_id)).one())
            assert tuple(row) == ("completed", 10)
            assert await db.read(lambda c: index.texts(c, "vs_1", taken[0].file_id)) == ["hello"]
        finally:
            await db.dispose()

    asyncio.run(main())


def test_a_job_interrupted_too_often_fails(tmp_path: Path) -> None:
    url = vector_storage_url(tmp_path)

    async def main() -> None:
        db, index = await _queue_db(url, 1)
        try:
            dying = IngestQueue(db, index, "dying/1", 0.001)
            for attempt in range(1, MAX_ATTEMPTS + 1):
                (job,) = await dying.claim(1)
                assert job.attempt == attempt
                await asyncio.sleep(0.01)
            assert await dying.claim(1) == []
            row = await db.read(lambda c: c.execute(select(vector_store_files)).one())
            assert row.status == "failed" and "interrupted" in row.last_error
        finally:
            await db.dispose()

    asyncio.run(main())


def test_a_backend_embeddings_model(make_vs_server: Any, upstream: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``embeddings.model`` names a configured model: its backend's /v1/embeddings embeds chunks
    and queries, a failure is retried, and the store remembers the model."""
    server = make_vs_server(embeddings={"model": MODEL, "batch_size": 2})
    alice = client(server)
    made = [alice.files.create(file=(f"{n}.txt", t.encode()), purpose="assistants").id
            for n, t in [("a", "apples and pears"), ("b", "rockets and planets"), ("c", "violins and cellos")]]
    upstream.embedding_failures = 1
    monkeypatch.setattr(ingest, "RETRY_SECONDS", 0.01)
    store = alice.vector_stores.create(name="backend", file_ids=made)
    wait_for(lambda: alice.vector_stores.retrieve(store.id).file_counts.completed == 3, what="ingestion")
    sent = upstream.embedding_requests
    assert {r["model"] for r in sent} == {"fake-model"} and all(len(r["input"]) <= 2 for r in sent)
    assert len(sent) >= 3  # the failed one, then the retried file's and the others'
    found = alice.vector_stores.search(store.id, query="planets", ranking_options={"ranker": "none"})
    assert found.data[0].filename == "b.txt" and sent[-1]["input"] == ["planets"]
    url = server.server.config.app.state.settings.storage_url
    from tests.procs import query

    assert query(url, "SELECT embedding_model FROM vector_stores")[0][0] == MODEL


def test_cancelling_a_batch_keeps_nothing_of_it(make_vs_server: Any, upstream: Any) -> None:
    server = make_vs_server(embeddings={"model": MODEL})
    alice = client(server)
    made = [alice.files.create(file=(f"{i}.txt", b"some text"), purpose="assistants").id for i in range(3)]
    store = alice.vector_stores.create(name="cancel")
    gate = upstream.embedding_gate = threading.Event()
    try:
        batch = alice.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=made)
        assert batch.status == "in_progress" and batch.file_counts.in_progress == 3
        wait_for(lambda: upstream.embedding_requests, what="an embedding in flight")
        cancelled = alice.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
        assert cancelled.status == "cancelled" and cancelled.file_counts.cancelled == 3
    finally:
        gate.set()
    listed = alice.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert {f.status for f in listed} == {"cancelled"}
    url = server.server.config.app.state.settings.storage_url
    from tests.procs import query

    wait_for(lambda: query(url, "SELECT COUNT(*) FROM vector_store_files WHERE lease_owner IS NOT NULL")[0][0] == 0,
             what="the worker to let go")
    assert query(url, "SELECT COUNT(*) FROM vector_chunks")[0][0] == 0
    assert alice.vector_stores.retrieve(store.id).file_counts.cancelled == 3


def test_replicas_share_files_stores_and_search(make_vs_server: Any, tmp_path: Path) -> None:
    url = vector_storage_url(tmp_path / "shared")
    one, two = make_vs_server(storage_url=url), make_vs_server(storage_url=url)
    made = client(one).files.create(file=("tea.md", b"Green tea is steeped at 80 degrees."), purpose="assistants")
    assert client(two).files.content(made.id).read() == b"Green tea is steeped at 80 degrees."
    store = client(two).vector_stores.create(name="shared", file_ids=[made.id])
    wait_for(lambda: client(one).vector_stores.retrieve(store.id).status == "completed", what="ingestion")
    assert client(one).vector_stores.search(store.id, query="brewing tea").data[0].filename == "tea.md"
    with pytest.raises(openai.NotFoundError):
        client(two, "key-bob").vector_stores.search(store.id, query="tea")


def test_postgres_without_pgvector_says_so(make_server: Any, pg_url: str) -> None:
    """The system PostgreSQL here has no pgvector: files work, vector stores are a 400 naming it."""
    import asyncio as aio

    import asyncpg

    async def has_vector() -> bool:
        conn = await asyncpg.connect(postgres.admin_url())
        try:
            return bool(await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"))
        finally:
            await conn.close()

    if aio.run(has_vector()):
        pytest.skip("this PostgreSQL has pgvector")
    server = make_server(storage_url=pg_url)
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    assert c.files.create(file=("a.txt", b"fine"), purpose="assistants").bytes == 4
    with pytest.raises(openai.BadRequestError) as refused:
        c.vector_stores.create(name="x")
    assert "'vector' (pgvector)" in refused.value.body["message"]
    assert refused.value.body["code"] == "vector_stores_unavailable"
    with pytest.raises(openai.BadRequestError):
        c.vector_stores.search("vs_x", query="x")


def test_words_in_most_chunks_leave_the_full_text_ranking(tmp_path: Path) -> None:
    """bm25 gives a word in over half of the chunks no weight; the search leaves it out of the
    full-text ranking (SQLite counts in FTS5, PostgreSQL reads ANALYZE's statistics)."""
    url = vector_storage_url(tmp_path)

    async def main() -> None:
        db, index = await _queue_db(url, 1)
        try:
            chunks = [Chunk(i, f"common words about topic{i}", 4) for i in range(6)]
            await db.write(lambda c: index.insert(c, "vs_1", "file-0", chunks, [[1.0, float(i)] for i in range(6)]))
            if db.is_postgres:
                await db.write(lambda c: c.execute(text("ANALYZE vector_chunks")))
            searcher = Searcher(db, index, None)  # type: ignore[arg-type]
            kept = await db.read(lambda c: searcher._discriminating(c, ["common", "topic3", "absent"]))
            assert kept == ["topic3", "absent"]
        finally:
            await db.dispose()

    asyncio.run(main())
