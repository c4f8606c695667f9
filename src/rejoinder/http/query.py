"""Query parameters shared by list endpoints, validated into OpenAI's error shape."""

from __future__ import annotations

from typing import Literal

from fastapi import Query

Order = Literal["asc", "desc"]


def limit_param(default: int = 20) -> int:
    return Query(default, ge=1, le=100)
