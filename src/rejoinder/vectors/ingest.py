"""Ingestion in the background: claim a file from the queue, extract its text, chunk it, embed the
chunks and index them, on whichever replica has a free slot.

Everything heavy runs off the event loop (PDF parsing and tokenizing on a thread, the embedded
model on its own thread). The replica renews its leases while it works; if it dies, another
replica claims the file once the lease lapses (``queue.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time

from rejoinder.config import Settings
from rejoinder.files.store import FileStore
from rejoinder.vectors.chunking import chunk_text, count_tokens
from rejoinder.vectors.embeddings import Embedders, EmbeddingError
from rejoinder.vectors.extract import ExtractionError, extract_text
from rejoinder.vectors.queue import MAX_ATTEMPTS, IngestQueue, Job

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # how often a replica looks for files other replicas queued
SWEEP_SECONDS = 60.0  # how often expired files are deleted
EMBED_BATCH = 64  # chunks embedded between two checks that the job is still wanted
RETRY_SECONDS = 5.0
ANALYZE_AFTER = 500  # chunks ingested before PostgreSQL's statistics are refreshed (search reads them)


class IngestWorker:
    def __init__(self, settings: Settings, queue: IngestQueue, files: FileStore, embedders: Embedders):
        self.settings = settings
        self.queue = queue
        self.files = files
        self.embedders = embedders
        self.slots = settings.vector_stores.ingest_workers
        self.running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._accepting = True
        self._unanalyzed = 0  # chunks this replica indexed since it last ran ANALYZE

    def wake(self) -> None:
        """Files were queued here: look now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        self._loops = [asyncio.ensure_future(self._claim_loop()), asyncio.ensure_future(self._housekeeping())]

    async def stop(self) -> None:
        """Stop claiming; jobs still running are cancelled and given back to the queue."""
        self._accepting = False
        self._wake.set()
        for task in [*self._loops, *self.running.values()]:
            task.cancel()
        for task in [*self._loops, *self.running.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _claim_loop(self) -> None:
        while self._accepting:
            try:
                free = self.slots - len(self.running)
                if free > 0 and await self.queue.has_work():
                    for job in await self.queue.claim(free):
                        key = (job.vector_store_id, job.file_id)
                        self.running[key] = asyncio.ensure_future(self._run(job))
                        self.running[key].add_done_callback(functools.partial(self._done, key))
            except Exception:
                log.exception("claiming files to ingest failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    def _done(self, key: tuple[str, str], _task: object = None) -> None:
        self.running.pop(key, None)
        self._wake.set()

    async def _housekeeping(self) -> None:
        renew_every = max(self.queue.lease_seconds / 3, POLL_SECONDS)
        last_sweep = 0.0
        while True:
            await asyncio.sleep(renew_every)
            try:
                if self.running:
                    await self.queue.renew()
                if time.monotonic() - last_sweep >= SWEEP_SECONDS:
                    last_sweep = time.monotonic()
                    swept = await self.files.sweep()
                    if swept:
                        log.info("deleted %d expired files", len(swept))
            except Exception:
                log.exception("ingestion housekeeping failed")

    async def _run(self, job: Job) -> None:
        try:
            await self._ingest(job)
        except asyncio.CancelledError:
            await asyncio.shield(self.queue.release(job))
            raise
        except ExtractionError as exc:
            await self.queue.fail(job, exc.code, exc.message)
        except EmbeddingError as exc:
            log.warning("embedding %s failed (attempt %d): %s", job.file_id, job.attempt, exc)
            if job.attempt >= MAX_ATTEMPTS:
                await self.queue.fail(job, "server_error", "The embedding model failed to embed the file.")
            else:
                await self.queue.retry_later(job, RETRY_SECONDS * job.attempt)
        except Exception:
            log.exception("ingesting %s into %s failed", job.file_id, job.vector_store_id)
            await self.queue.fail(job, "server_error", "The file could not be processed.")

    async def _ingest(self, job: Job) -> None:
        data = await self.files.read_all(job.file_id)
        text = await asyncio.to_thread(extract_text, job.filename, data)
        del data
        limit = self.settings.vector_stores.max_file_tokens
        tokens = await asyncio.to_thread(count_tokens, text)
        if tokens > limit:
            raise ExtractionError("invalid_file", f"The file has {tokens} tokens; the limit is {limit}.")
        chunks = await asyncio.to_thread(chunk_text, text, job.chunking_strategy)
        embedder = self.embedders.get(job.embedding_model)
        vectors: list[list[float]] = []
        for start in range(0, len(chunks), EMBED_BATCH):
            vectors.extend(await embedder.embed([c.text for c in chunks[start:start + EMBED_BATCH]]))
        usage = sum(len(c.text.encode("utf-8")) for c in chunks) + sum(4 * len(v) for v in vectors)
        if not await self.queue.complete(job, chunks, vectors, usage):
            log.info("ingestion of %s into %s was overtaken (detached or cancelled)", job.file_id,
                     job.vector_store_id)
            return
        await self._refresh_statistics(len(chunks))

    async def _refresh_statistics(self, added: int) -> None:
        """PostgreSQL's full-text ranking leaves out the words in over half of the chunks, found in
        ANALYZE's statistics (vectors/search.py); autovacuum refreshes them late, and a store searched
        before then ranked nearly every chunk (0.45 s instead of ~15 ms at 10,000 chunks). So this
        replica analyzes the chunks after every ``ANALYZE_AFTER`` it indexed, and when it goes idle."""
        self._unanalyzed += added
        if not self.queue.db.is_postgres or not self._unanalyzed:
            return
        if self._unanalyzed < ANALYZE_AFTER and len(self.running) > 1:
            return
        self._unanalyzed = 0
        try:
            await self.queue.db.write(lambda conn: conn.exec_driver_sql("ANALYZE vector_chunks"))
        except Exception:
            log.exception("refreshing the statistics of vector_chunks failed")
