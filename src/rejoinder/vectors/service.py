"""The Vector Stores API's operations: requests checked, stores and files changed, ingestion woken.

The HTTP routes are thin wrappers over this; a ``file_search`` tool calls ``search`` directly.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rejoinder.errors import APIError, InvalidRequest
from rejoinder.ids import new_id
from rejoinder.store.pagination import Order, Page
from rejoinder.tenant import Tenant
from rejoinder.vectors import params
from rejoinder.vectors import search as search_mod
from rejoinder.vectors.embeddings import Embedders, EmbeddingError
from rejoinder.vectors.files_store import Attach, VectorStoreFiles, attach
from rejoinder.vectors.filters import validate as validate_filters
from rejoinder.vectors.index import ChunkIndex
from rejoinder.vectors.ingest import IngestWorker
from rejoinder.vectors.objects import is_expired
from rejoinder.vectors.search import Searcher, SearchRequest, SearchResult
from rejoinder.vectors.store import UNSET, VectorStoreStore, store_object

log = logging.getLogger(__name__)
TOUCH_EVERY = 60.0  # seconds: how stale a store's last_active_at may get before a search writes it


class VectorStoresUnavailable(InvalidRequest):
    def __init__(self, reason: str):
        super().__init__(f"Vector stores are not available on this server: {reason}.",
                         code="vector_stores_unavailable")


class VectorService:
    def __init__(self, index: ChunkIndex, stores: VectorStoreStore, files: VectorStoreFiles, searcher: Searcher,
                 embedders: Embedders, worker: IngestWorker):
        self.index = index
        self.stores = stores
        self.files = files
        self.searcher = searcher
        self.embedders = embedders
        self.worker = worker

    def require_available(self) -> None:
        if self.index.unavailable is not None:
            raise VectorStoresUnavailable(self.index.unavailable)

    # -- stores --------------------------------------------------------------------------------

    async def create_store(self, owner: Tenant, raw: Any) -> dict[str, Any]:
        self.require_available()
        body = params.check_object(raw, ("name", "description", "metadata", "file_ids", "chunking_strategy",
                                         "expires_after"))
        name = params.string(body.get("name"), "name", nullable=True, max_len=256) or ""
        description = params.string(body.get("description"), "description", nullable=True, max_len=512)
        metadata = params.metadata(body.get("metadata"))
        days = params.expires_after(body.get("expires_after"))
        file_ids = params.id_list(body.get("file_ids", []), "file_ids")
        strategy = params.chunking_strategy(body.get("chunking_strategy"))
        store_id = new_id("vs")
        model = self.embedders.default

        def txn(conn: Any) -> dict[str, Any]:
            row = self.stores.create(conn, store_id, owner, name, description, metadata, days, model)
            attach(conn, store_id, owner, [Attach(f, None, strategy) for f in file_ids], None)
            return store_object(conn, row)

        created = await self.stores.db.write(txn)
        if file_ids:
            self.worker.wake()
        return created

    async def update_store(self, owner: Tenant, store_id: str, raw: Any) -> dict[str, Any]:
        self.require_available()
        body = params.check_object(raw, ("name", "metadata", "expires_after"))
        return await self.stores.update(
            store_id, owner,
            name=params.string(body["name"], "name", nullable=True, max_len=256) if "name" in body else UNSET,
            metadata=params.metadata(body["metadata"]) if "metadata" in body else UNSET,
            expires_after_days=params.expires_after(body["expires_after"]) if "expires_after" in body else UNSET)

    async def list_stores(self, owner: Tenant, after: str | None, before: str | None, limit: int, order: Order) -> Page:
        self.require_available()
        return await self.stores.list_stores(owner, after, before, limit, order)

    async def get_store(self, owner: Tenant, store_id: str) -> dict[str, Any]:
        self.require_available()
        return await self.stores.get(store_id, owner)

    async def delete_store(self, owner: Tenant, store_id: str) -> None:
        self.require_available()
        await self.stores.delete(store_id, owner)

    # -- files ---------------------------------------------------------------------------------

    @staticmethod
    def _entry(raw: Any, param: str, defaults: tuple[dict[str, Any] | None, dict[str, Any]]) -> Attach:
        body = params.check_object(raw, ("file_id", "attributes", "chunking_strategy"), param)
        prefix = f"{param}." if param else ""
        file_id = params.string(params.required(body, "file_id", f"{prefix}file_id"), f"{prefix}file_id", max_len=80)
        assert file_id is not None
        attributes = params.attributes(body["attributes"], f"{prefix}attributes") if "attributes" in body \
            else defaults[0]
        strategy = params.chunking_strategy(body["chunking_strategy"], f"{prefix}chunking_strategy") \
            if "chunking_strategy" in body else defaults[1]
        return Attach(file_id, attributes, strategy)

    async def attach_file(self, owner: Tenant, store_id: str, raw: Any) -> dict[str, Any]:
        self.require_available()
        entry = self._entry(raw, "", (None, params.chunking_strategy(None)))
        created = await self.files.attach_one(store_id, owner, entry)
        self.worker.wake()
        return created

    async def create_batch(self, owner: Tenant, store_id: str, raw: Any) -> dict[str, Any]:
        self.require_available()
        body = params.check_object(raw, ("file_ids", "files", "attributes", "chunking_strategy"))
        if ("file_ids" in body) == ("files" in body):
            raise InvalidRequest("Give exactly one of 'file_ids' and 'files'.", param="file_ids",
                                 code="invalid_value")
        defaults = (params.attributes(body.get("attributes")), params.chunking_strategy(body.get("chunking_strategy")))
        if "file_ids" in body:
            entries = [Attach(f, *defaults) for f in params.id_list(body["file_ids"], "file_ids")]
        else:
            items = body["files"]
            if not isinstance(items, list) or not 0 < len(items) <= params.MAX_FILES_PER_REQUEST:
                raise InvalidRequest(f"Invalid 'files': expected 1 to {params.MAX_FILES_PER_REQUEST} files.",
                                     param="files", code="invalid_value")
            entries = [self._entry(item, f"files[{i}]", defaults) for i, item in enumerate(items)]
        if not entries:
            raise InvalidRequest("Invalid 'file_ids': the batch has no files.", param="file_ids", code="invalid_value")
        if len({e.file_id for e in entries}) != len(entries):
            raise InvalidRequest("Invalid 'files': a file is listed twice.", param="files", code="invalid_value")
        created = await self.files.create_batch(new_id("vsfb"), store_id, owner, entries)
        self.worker.wake()
        return created

    async def update_file(self, owner: Tenant, store_id: str, file_id: str, raw: Any) -> dict[str, Any]:
        self.require_available()
        body = params.check_object(raw, ("attributes",))
        attributes = params.attributes(params.required(body, "attributes", "attributes"))
        return await self.files.update_attributes(store_id, file_id, owner, attributes)

    # -- search --------------------------------------------------------------------------------

    async def search(self, owner: Tenant, store_ids: list[str], raw: Any) -> dict[str, Any]:
        """``POST /v1/vector_stores/{id}/search``: a page of results as OpenAI's API returns it."""
        self.require_available()
        body = params.check_object(raw, ("query", "filters", "max_num_results", "ranking_options", "rewrite_query"))
        ranker, threshold = search_mod.check_ranking_options(body.get("ranking_options"))
        request = SearchRequest(
            vector_store_ids=store_ids,
            queries=params.queries(params.required(body, "query", "query")),
            filters=validate_filters(body.get("filters")),
            max_num_results=params.integer(body.get("max_num_results", 10), "max_num_results", 1, 50),
            ranker=ranker, score_threshold=threshold,
            rewrite_query=params.boolean(body.get("rewrite_query", False), "rewrite_query"))
        searched, results = await self.run_search(owner, request)
        return {"object": "vector_store.search_results.page", "search_query": searched,
                "data": [r.body() for r in results], "has_more": False, "next_page": None}

    async def run_search(self, owner: Tenant, request: SearchRequest) -> tuple[list[str], list[SearchResult]]:
        """The search service for any caller (the route above, a file_search tool): every store
        must be the owner's (else 404) and not expired (else 400)."""
        self.require_available()
        models: dict[str, str] = {}
        stale: list[str] = []
        for store_id in request.vector_store_ids:
            row = await self.stores.get_row(store_id, owner)
            if (row.last_active_at or 0) < time.time() - TOUCH_EVERY:
                stale.append(store_id)
            if is_expired(row):
                raise InvalidRequest(f"The vector store '{store_id}' has expired.", param="vector_store_id",
                                     code="vector_store_expired")
            models[store_id] = row.embedding_model
        try:
            found = await self.searcher.search(request, models)
        except EmbeddingError as exc:
            log.warning("embedding a search query failed: %s", exc)
            raise APIError("The embedding model could not embed the query; try again later.", status=503,
                           code="embedding_model_unavailable") from None
        if stale:  # expiry counts in days: one write a minute per store, not one per search
            await self.stores.touch(stale)
        return found
