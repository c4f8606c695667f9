"""The API objects of vector stores, their files and file batches, built from stored rows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rejoinder.errors import NotFound
from rejoinder.store.jsonutil import loads

DAY = 86400
STATUSES = ("in_progress", "completed", "failed", "cancelled")


@dataclass
class Counts:
    by_status: dict[str, int] = field(default_factory=dict)
    usage_bytes: int = 0

    def body(self) -> dict[str, int]:
        out = {s: self.by_status.get(s, 0) for s in STATUSES}
        out["total"] = sum(out.values())
        return out


def expires_at(row: Any) -> float | None:
    return row.last_active_at + row.expires_after_days * DAY if row.expires_after_days else None


def is_expired(row: Any, now: float | None = None) -> bool:
    end = expires_at(row)
    return end is not None and (now or time.time()) >= end


def store_body(row: Any, counts: Counts) -> dict[str, Any]:
    file_counts = counts.body()
    end = expires_at(row)
    if is_expired(row):
        status = "expired"
    elif file_counts["in_progress"]:
        status = "in_progress"
    else:
        status = "completed"
    return {
        "id": row.id,
        "object": "vector_store",
        "created_at": int(row.created_at),
        "name": row.name,
        "usage_bytes": counts.usage_bytes,
        "file_counts": file_counts,
        "status": status,
        "expires_after": {"anchor": "last_active_at", "days": row.expires_after_days}
        if row.expires_after_days else None,
        "expires_at": int(end) if end is not None else None,
        "last_active_at": int(row.last_active_at),
        "metadata": loads(row.metadata),
    }


def file_body(row: Any) -> dict[str, Any]:
    return {
        "id": row.file_id,
        "object": "vector_store.file",
        "created_at": int(row.created_at),
        "usage_bytes": int(row.usage_bytes),
        "vector_store_id": row.vector_store_id,
        "status": row.status,
        "last_error": loads(row.last_error) if row.last_error else None,
        "chunking_strategy": loads(row.chunking_strategy),
        "attributes": row.attributes,
    }


def batch_body(row: Any, counts: Counts) -> dict[str, Any]:
    file_counts = counts.body()
    if row.cancelled:
        status = "cancelled"
    elif file_counts["in_progress"]:
        status = "in_progress"
    elif file_counts["total"] and file_counts["failed"] == file_counts["total"]:
        status = "failed"
    else:
        status = "completed"
    return {
        "id": row.id,
        "object": "vector_store.files_batch",
        "created_at": int(row.created_at),
        "vector_store_id": row.vector_store_id,
        "status": status,
        "file_counts": file_counts,
    }


def store_not_found(vector_store_id: str) -> NotFound:
    return NotFound(f"No vector store found with id '{vector_store_id}'.", param="vector_store_id")


def vs_file_not_found(file_id: str, vector_store_id: str) -> NotFound:
    return NotFound(f"No file found with id '{file_id}' in vector store '{vector_store_id}'.", param="file_id")


def batch_not_found(batch_id: str) -> NotFound:
    return NotFound(f"No file batch found with id '{batch_id}'.", param="batch_id")
