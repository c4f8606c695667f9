"""``/v1/vector_stores/{id}/files`` and ``/file_batches``: attaching files, and what became of them.

While a file or batch is ``in_progress`` its retrieve answers carry ``openai-poll-after-ms``, which
the SDK's ``poll``/``create_and_poll`` helpers use instead of their one-second default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from rejoinder.http.body import json_body
from rejoinder.http.gate import principal
from rejoinder.http.routes_vector_stores import vectors
from rejoinder.tenant import Tenant

router = APIRouter()
POLL_AFTER_MS = "250"
Status = Literal["in_progress", "completed", "failed", "cancelled"]


@dataclass(frozen=True)
class FileListQuery:
    """The query of both file listings (a store's, a batch's)."""

    after: str | None = None
    before: str | None = None
    limit: int = Query(20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"
    filter: Status | None = None


def _poll_hint(response: Response, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("status") == "in_progress":
        response.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return body


@router.post("/v1/vector_stores/{vector_store_id}/files")
async def create_vector_store_file(request: Request, response: Response, vector_store_id: str,
                                   owner: Tenant = Depends(principal)) -> dict[str, Any]:
    return _poll_hint(response, await vectors(request).attach_file(owner, vector_store_id, await json_body(request)))


@router.get("/v1/vector_stores/{vector_store_id}/files")
async def list_vector_store_files(request: Request, vector_store_id: str, owner: Tenant = Depends(principal),
                                  q: FileListQuery = Depends()) -> dict[str, Any]:
    service = vectors(request)
    service.require_available()
    return (await service.files.list_files(vector_store_id, owner, q.filter, q.after, q.before, q.limit,
                                           q.order)).body()


@router.get("/v1/vector_stores/{vector_store_id}/files/{file_id}")
async def retrieve_vector_store_file(request: Request, response: Response, vector_store_id: str, file_id: str,
                                     owner: Tenant = Depends(principal)) -> dict[str, Any]:
    service = vectors(request)
    service.require_available()
    return _poll_hint(response, await service.files.get(vector_store_id, file_id, owner))


@router.post("/v1/vector_stores/{vector_store_id}/files/{file_id}")
async def update_vector_store_file(request: Request, vector_store_id: str, file_id: str,
                                   owner: Tenant = Depends(principal)) -> dict[str, Any]:
    return await vectors(request).update_file(owner, vector_store_id, file_id, await json_body(request))


@router.delete("/v1/vector_stores/{vector_store_id}/files/{file_id}")
async def delete_vector_store_file(request: Request, vector_store_id: str, file_id: str,
                                   owner: Tenant = Depends(principal)) -> dict[str, Any]:
    service = vectors(request)
    service.require_available()
    await service.files.delete(vector_store_id, file_id, owner)
    return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}


@router.get("/v1/vector_stores/{vector_store_id}/files/{file_id}/content")
async def vector_store_file_content(request: Request, vector_store_id: str, file_id: str,
                                    owner: Tenant = Depends(principal)) -> dict[str, Any]:
    service = vectors(request)
    service.require_available()
    texts = await service.files.content(vector_store_id, file_id, owner)
    return {"object": "vector_store.file_content.page", "data": [{"type": "text", "text": t} for t in texts],
            "has_more": False, "next_page": None}


@router.post("/v1/vector_stores/{vector_store_id}/file_batches")
async def create_file_batch(request: Request, response: Response, vector_store_id: str,
                            owner: Tenant = Depends(principal)) -> dict[str, Any]:
    return _poll_hint(response, await vectors(request).create_batch(owner, vector_store_id, await json_body(request)))


@router.get("/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}")
async def retrieve_file_batch(request: Request, response: Response, vector_store_id: str, batch_id: str,
                              owner: Tenant = Depends(principal)) -> dict[str, Any]:
    service = vectors(request)
    service.require_available()
    return _poll_hint(response, await service.files.get_batch(vector_store_id, batch_id, owner))


@router.post("/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel")
async def cancel_file_batch(request: Request, vector_store_id: str, batch_id: str,
                            owner: Tenant = Depends(principal)) -> dict[str, Any]:
    service = vectors(request)
    service.require_available()
    return await service.files.cancel_batch(vector_store_id, batch_id, owner)


@router.get("/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/files")
async def list_file_batch_files(
    request: Request,
    vector_store_id: str,
    batch_id: str,
    owner: Tenant = Depends(principal),
    after: str | None = None,
    before: str | None = None,
    limit: int = Query(20, ge=1, le=100),
    order: Literal["asc", "desc"] = "desc",
    filter: Status | None = None,
) -> dict[str, Any]:
    service = vectors(request)
    service.require_available()
    return (await service.files.list_files(vector_store_id, owner, filter, after, before, limit, order,
                                     batch_id=batch_id)).body()
