"""``/v1/responses``: retrieve, delete, list, input items, cancel. Create is ``http/routes_create.py``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from rejoinder.errors import InvalidRequest, not_found
from rejoinder.http.gate import principal
from rejoinder.http.query import metadata_filter
from rejoinder.http.routes_conversations import include_param
from rejoinder.http.sse import sse_response
from rejoinder.item_view import shown_items, shown_response
from rejoinder.tenant import Tenant

router = APIRouter()


def _services(request: Request) -> Any:
    return request.app.state.services


@router.get("/v1/responses")
async def list_responses(
    request: Request,
    owner: Tenant = Depends(principal),
    after: str | None = None,
    limit: int = Query(50, ge=1, le=100),
    order: Literal["asc", "desc"] = "desc",
    model: str | None = None,
    metadata: dict[str, str] = Depends(metadata_filter),
) -> dict[str, Any]:
    page = await _services(request).responses.responses.list_responses(owner, after, limit, order, model, metadata)
    if page is None:
        raise InvalidRequest(f"No response found with id '{after}' to list after.", param="after")
    return replace(page, data=[shown_response(body, ()) for body in page.data]).body()


@router.get("/v1/responses/{response_id}", response_model=None)
async def get_response(
    request: Request,
    response_id: str,
    owner: Tenant = Depends(principal),
    stream: bool = False,
    starting_after: int | None = Query(None, ge=-1),
    include_obfuscation: bool | None = None,
    include: list[str] = Depends(include_param),
) -> dict[str, Any] | Response:
    if stream:
        worker = _services(request).background
        await worker.check_streamable(response_id, owner)
        after = -1 if starting_after is None else starting_after
        return sse_response(worker.follow(response_id, after), headers_first=True)
    stored = await _services(request).responses.responses.get(response_id, owner)
    if stored is None:
        raise not_found("Response", response_id)
    return shown_response(stored.body, include)


@router.post("/v1/responses/{response_id}/cancel")
async def cancel_response(request: Request, response_id: str, owner: Tenant = Depends(principal)) -> dict[str, Any]:
    return await _services(request).background.cancel(response_id, owner)


@router.delete("/v1/responses/{response_id}")
async def delete_response(request: Request, response_id: str, owner: Tenant = Depends(principal)) -> dict[str, Any]:
    if not await _services(request).responses.responses.delete(response_id, owner):
        raise not_found("Response", response_id)
    return {"id": response_id, "object": "response", "deleted": True}


@router.get("/v1/responses/{response_id}/input_items")
async def list_input_items(
    request: Request,
    response_id: str,
    owner: Tenant = Depends(principal),
    after: str | None = None,
    limit: int = Query(20, ge=1, le=100),
    order: Literal["asc", "desc"] = "desc",
    include: list[str] = Depends(include_param),
) -> dict[str, Any]:
    store = _services(request).responses.responses
    if not await store.exists(response_id, owner):
        raise not_found("Response", response_id)
    page = await store.list_input_items(response_id, after, limit, order)
    if page is None:
        raise InvalidRequest(f"No input item found with id '{after}' in response '{response_id}'.", param="after")
    return replace(page, data=shown_items(page.data, include)).body()
