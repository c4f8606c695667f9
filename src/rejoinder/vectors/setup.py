"""Building the Files and Vector Stores services for the app, and saying at start-up what is missing."""

from __future__ import annotations

import logging

from rejoinder.config import Settings
from rejoinder.files.store import FileStore
from rejoinder.store.db import Database
from rejoinder.vectors.embeddings import Embedders
from rejoinder.vectors.files_store import VectorStoreFiles
from rejoinder.vectors.index import ChunkIndex
from rejoinder.vectors.ingest import IngestWorker
from rejoinder.vectors.queue import IngestQueue
from rejoinder.vectors.search import Searcher
from rejoinder.vectors.service import VectorService
from rejoinder.vectors.store import VectorStoreStore

log = logging.getLogger(__name__)


async def build(settings: Settings, db: Database, lease_owner: str) -> tuple[FileStore, VectorService]:
    index = ChunkIndex(db)
    reason = await index.ensure_schema()
    embedders = Embedders(settings)
    reason = reason or embedders.unavailable_reason()
    index.unavailable = reason
    if reason is not None:
        log.warning("VECTOR STORES ARE UNAVAILABLE: %s. The Files API works; /v1/vector_stores answers 400.",
                    reason)
    else:
        log.info("vector stores: embeddings by %s, search in %s", embedders.default,
                 "PostgreSQL (pgvector + tsvector)" if db.is_postgres else "SQLite (sqlite-vec + FTS5)")
    vs_files = VectorStoreFiles(db, index)
    files = FileStore(db, on_delete=vs_files.forget_files)
    queue = IngestQueue(db, index, lease_owner, settings.lease_seconds)
    worker = IngestWorker(settings, queue, files, embedders)
    service = VectorService(index, VectorStoreStore(db, index), vs_files, Searcher(db, index, embedders),
                            embedders, worker)
    return files, service
