"""``/v1/conversations``: conversations and their items.

Every route resolves the principal and passes it to the store, so another principal's
conversation answers 404 exactly like a missing one, for reads and mutations alike.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from rejoinder.api import conversations as api
from rejoinder.errors import InvalidRequest
from rejoinder.http.body import json_body
from rejoinder.http.gate import principal
from rejoinder.http.query import metadata_filter
from rejoinder.ids import new_id
from rejoinder.item_types import ItemType
from rejoinder.item_view import shown, shown_items
from rejoinder.store.conversations import ConversationStore, conversation_not_found
from rejoinder.store.pagination import Page
from rejoinder.tenant import Tenant

router = APIRouter()


def _store(request: Request) -> ConversationStore:
    store: ConversationStore = request.app.state.services.conversations
    return store


def include_param(request: Request) -> list[str]:
    """``include``, validated: the openai SDK sends ``include[]=...``, curl users ``include=...``."""
    values = request.query_params.getlist("include") + request.query_params.getlist("include[]")
    api.validate_include(values)
    return values


async def _optional_body(request: Request) -> Any:
    """``POST /v1/conversations`` may come without a body (``curl -X POST``)."""
    return await json_body(request) if await request.body() else None


def _item_table(request: Request) -> dict[str, ItemType]:
    """The server's table of item types (its tool kinds' rows included)."""
    return request.app.state.services.responses.tools.item_types


@router.post("/v1/conversations")
async def create_conversation(request: Request, owner: Tenant = Depends(principal)) -> dict[str, Any]:
    metadata, items = api.validate_create(await _optional_body(request), _item_table(request))
    return await _store(request).create(new_id("conv"), owner, metadata, items)


@router.get("/v1/conversations")
async def list_conversations(
    request: Request,
    owner: Tenant = Depends(principal),
    after: str | None = None,
    limit: int = Query(20, ge=1, le=100),
    order: Literal["asc", "desc"] = "desc",
    metadata: dict[str, str] = Depends(metadata_filter),
) -> dict[str, Any]:
    """A listing extension, as ``GET /v1/responses`` (OpenAI lists conversations only in its dashboard)."""
    page = await _store(request).list_conversations(owner, after, limit, order, metadata)
    if page is None:
        raise InvalidRequest(f"No conversation found with id '{after}' to list after.", param="after")
    return page.body()


@router.get("/v1/conversations/{conversation_id}")
async def get_conversation(request: Request, conversation_id: str,
                           owner: Tenant = Depends(principal)) -> dict[str, Any]:
    found = await _store(request).get(conversation_id, owner)
    if found is None:
        raise conversation_not_found(conversation_id)
    return found


@router.post("/v1/conversations/{conversation_id}")
async def update_conversation(request: Request, conversation_id: str,
                              owner: Tenant = Depends(principal)) -> dict[str, Any]:
    metadata = api.validate_update(await json_body(request))
    return await _store(request).update_metadata(conversation_id, owner, metadata)


@router.delete("/v1/conversations/{conversation_id}")
async def delete_conversation(request: Request, conversation_id: str,
                              owner: Tenant = Depends(principal)) -> dict[str, Any]:
    await _store(request).delete(conversation_id, owner)
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}


@router.post("/v1/conversations/{conversation_id}/items")
async def add_items(
    request: Request,
    conversation_id: str,
    owner: Tenant = Depends(principal),
    include: list[str] = Depends(include_param),
) -> dict[str, Any]:
    items = api.validate_add_items(await json_body(request), _item_table(request))
    await _store(request).add_items(conversation_id, owner, items)
    return Page(data=items, has_more=False).body()


@router.get("/v1/conversations/{conversation_id}/items")
async def list_items(
    request: Request,
    conversation_id: str,
    owner: Tenant = Depends(principal),
    after: str | None = None,
    limit: int = Query(20, ge=1, le=100),
    order: Literal["asc", "desc"] = "desc",
    include: list[str] = Depends(include_param),
) -> dict[str, Any]:
    page = await _store(request).list_items(conversation_id, owner, after, limit, order)
    return replace(page, data=shown_items(page.data, include)).body()


@router.get("/v1/conversations/{conversation_id}/items/{item_id}")
async def get_item(
    request: Request,
    conversation_id: str,
    item_id: str,
    owner: Tenant = Depends(principal),
    include: list[str] = Depends(include_param),
) -> dict[str, Any]:
    return shown(await _store(request).get_item(conversation_id, owner, item_id), include)


@router.delete("/v1/conversations/{conversation_id}/items/{item_id}")
async def delete_item(request: Request, conversation_id: str, item_id: str,
                      owner: Tenant = Depends(principal)) -> dict[str, Any]:
    return await _store(request).delete_item(conversation_id, owner, item_id)
