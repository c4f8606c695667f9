"""``/v1/files``: upload (streamed, see ``files/upload.py``), list, retrieve, content, delete.

Every route resolves the principal first: another principal's file answers 404 like a missing one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from rejoinder.errors import InvalidRequest
from rejoinder.files.objects import file_not_found
from rejoinder.files.store import FileStore
from rejoinder.files.upload import FileTooLarge, receive_upload
from rejoinder.http.gate import principal
from rejoinder.tenant import Tenant

router = APIRouter()

MULTIPART_OVERHEAD = 64 * 1024  # form fields and boundaries around the file itself


def file_store(request: Request) -> FileStore:
    store: FileStore = request.app.state.services.files
    return store


@router.post("/v1/files")
async def create_file(request: Request, owner: Tenant = Depends(principal)) -> dict[str, Any]:
    limits = request.app.state.settings.files
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_bytes + MULTIPART_OVERHEAD:
        raise FileTooLarge(limits.max_bytes)  # known too large before a byte is read
    try:
        return await receive_upload(request.stream(), request.headers.get("content-type"), owner,
                                    file_store(request), limits.max_bytes, limits.part_bytes)
    except ClientDisconnect:  # nothing was kept; the answer reaches nobody, but it is no server error
        raise InvalidRequest("The upload was interrupted before it ended.", param="file") from None


@router.get("/v1/files")
async def list_files(
    request: Request,
    owner: Tenant = Depends(principal),
    after: str | None = None,
    limit: int = Query(10000, ge=1, le=10000),
    order: Literal["asc", "desc"] = "desc",
    purpose: str | None = None,
) -> dict[str, Any]:
    page = await file_store(request).list_files(owner, purpose, after, limit, order)
    return page.body()


@router.get("/v1/files/{file_id}")
async def retrieve_file(request: Request, file_id: str, owner: Tenant = Depends(principal)) -> dict[str, Any]:
    found = await file_store(request).get(file_id, owner)
    if found is None:
        raise file_not_found(file_id)
    return found


@router.delete("/v1/files/{file_id}")
async def delete_file(request: Request, file_id: str, owner: Tenant = Depends(principal)) -> dict[str, Any]:
    if not await file_store(request).delete(file_id, owner):
        raise file_not_found(file_id)
    return {"id": file_id, "object": "file", "deleted": True}


@router.get("/v1/files/{file_id}/content")
async def file_content(request: Request, file_id: str, owner: Tenant = Depends(principal)) -> StreamingResponse:
    store = file_store(request)
    found = await store.get(file_id, owner)
    if found is None:
        raise file_not_found(file_id)
    parts = await store.part_count(file_id)

    async def body() -> AsyncIterator[bytes]:
        for part in range(parts):
            data = await store.read_part(file_id, part)
            if data is None:  # deleted while it was being read: the response ends short
                return
            yield data

    disposition = f"attachment; filename*=UTF-8''{quote(found['filename'])}"
    return StreamingResponse(body(), media_type="application/octet-stream",
                             headers={"content-length": str(found["bytes"]), "content-disposition": disposition})
