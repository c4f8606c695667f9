"""``/v1/models`` and ``/health``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from rejoinder.errors import NotFound
from rejoinder.http.auth import principal

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/models")
async def list_models(request: Request, _owner: str = Depends(principal)) -> dict[str, Any]:
    return request.app.state.services.registry.listing()


@router.get("/v1/models/{model_id:path}")
async def get_model(request: Request, model_id: str, _owner: str = Depends(principal)) -> dict[str, Any]:
    for entry in request.app.state.services.registry.listing()["data"]:
        if entry["id"] == model_id:
            return entry
    raise NotFound(f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
