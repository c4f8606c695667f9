"""``/v1/models`` (the gate checks the key) and ``/health`` (public)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from rejoinder.errors import NotFound

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    return request.app.state.services.registry.listing()


@router.get("/v1/models/{model_id:path}")
async def get_model(request: Request, model_id: str) -> dict[str, Any]:
    for entry in request.app.state.services.registry.listing()["data"]:
        if entry["id"] == model_id:
            return entry
    raise NotFound(f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
