"""Query parameters shared by list endpoints, validated into OpenAI's error shape."""

from __future__ import annotations

from typing import Literal

from fastapi import Query, Request

from rejoinder.api.metadata import validate_metadata

Order = Literal["asc", "desc"]


def limit_param(default: int = 20) -> int:
    return Query(default, ge=1, le=100)


def metadata_filter(request: Request) -> dict[str, str]:
    """``metadata[key]=value`` query parameters (any number of them, each key once): a list
    keeps what holds every pair. Checked with the metadata rules, as the object it is matched with."""
    pairs: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name.startswith("metadata[") and name.endswith("]"):
            pairs[name[len("metadata["):-1]] = value
    return validate_metadata(pairs, param="metadata")
