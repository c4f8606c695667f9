"""``POST /v1/responses/input_tokens`` and ``POST /v1/responses/compact``: managing a long context."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from rejoinder.http.body import json_body
from rejoinder.http.gate import CONTEXT_KEY
from rejoinder.services.compaction import compact
from rejoinder.services.input_tokens import count_input_tokens

router = APIRouter()


@router.post("/v1/responses/input_tokens")
async def input_tokens(request: Request) -> dict[str, Any]:
    return await count_input_tokens(await json_body(request), request.scope[CONTEXT_KEY], request.app.state.services)


@router.post("/v1/responses/compact")
async def compact_response(request: Request) -> dict[str, Any]:
    return await compact(await json_body(request), request.scope[CONTEXT_KEY], request.app.state.services)
