"""``/v1/vector_stores``: stores and their search (files and batches: ``routes_vector_store_files``).

Every route resolves the principal; another principal's store answers 404 like a missing one.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from rejoinder.http.body import json_body
from rejoinder.http.gate import principal
from rejoinder.tenant import Tenant
from rejoinder.vectors.service import VectorService

router = APIRouter()


def vectors(request: Request) -> VectorService:
    service: VectorService = request.app.state.services.vectors
    return service


async def optional_json(request: Request) -> Any:
    return await json_body(request) if await request.body() else None


@router.post("/v1/vector_stores")
async def create_vector_store(request: Request, owner: Tenant = Depends(principal)) -> dict[str, Any]:
    return await vectors(request).create_store(owner, await optional_json(request))


@router.get("/v1/vector_stores")
async def list_vector_stores(
    request: Request,
    owner: Tenant = Depends(principal),
    after: str | None = None,
    before: str | None = None,
    limit: int = Query(20, ge=1, le=100),
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    return (await vectors(request).list_stores(owner, after, before, limit, order)).body()


@router.get("/v1/vector_stores/{vector_store_id}")
async def retrieve_vector_store(request: Request, vector_store_id: str,
                                owner: Tenant = Depends(principal)) -> dict[str, Any]:
    return await vectors(request).get_store(owner, vector_store_id)


@router.post("/v1/vector_stores/{vector_store_id}")
async def update_vector_store(request: Request, vector_store_id: str,
                              owner: Tenant = Depends(principal)) -> dict[str, Any]:
    return await vectors(request).update_store(owner, vector_store_id, await json_body(request))


@router.delete("/v1/vector_stores/{vector_store_id}")
async def delete_vector_store(request: Request, vector_store_id: str,
                              owner: Tenant = Depends(principal)) -> dict[str, Any]:
    await vectors(request).delete_store(owner, vector_store_id)
    return {"id": vector_store_id, "object": "vector_store.deleted", "deleted": True}


@router.post("/v1/vector_stores/{vector_store_id}/search")
async def search_vector_store(request: Request, vector_store_id: str,
                              owner: Tenant = Depends(principal)) -> dict[str, Any]:
    return await vectors(request).search(owner, [vector_store_id], await json_body(request))
