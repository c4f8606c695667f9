"""Checking request bodies of the Vector Stores API against openai-python's parameter types.

Hand-checked rather than validated through the SDK's TypedDicts: pydantic silently drops unknown
keys of a TypedDict and coerces types, and every mistake here must be a 400 naming the field.
"""

from __future__ import annotations

import math
from typing import Any

from rejoinder.api.metadata import validate_metadata
from rejoinder.errors import InvalidRequest
from rejoinder.vectors.chunking import AUTO

MAX_FILES_PER_REQUEST = 500
MAX_QUERIES = 10
MAX_QUERY_CHARS = 4096


def _type_error(param: str, expected: str, value: Any) -> InvalidRequest:
    got = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", dict: "an object",
           list: "an array", type(None): "null"}.get(type(value), type(value).__name__)
    return InvalidRequest(f"Invalid type for '{param}': expected {expected}, but got {got} instead.",
                          param=param, code="invalid_type")


def check_object(body: Any, allowed: tuple[str, ...], param: str = "") -> dict[str, Any]:
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise _type_error(param or "body", "an object", body)
    for key in body:
        if key not in allowed:
            name = f"{param}.{key}" if param else key
            raise InvalidRequest(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    return body


def required(body: dict[str, Any], key: str, param: str) -> Any:
    if key not in body:
        raise InvalidRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    return body[key]


def string(value: Any, param: str, *, nullable: bool = False, max_len: int | None = None) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise _type_error(param, "a string", value)
    if max_len is not None and len(value) > max_len:
        raise InvalidRequest(f"Invalid '{param}': string too long. Expected a string with maximum length "
                             f"{max_len}, but got a string with length {len(value)} instead.", param=param,
                             code="string_above_max_length")
    if "\x00" in value:
        raise InvalidRequest(f"Invalid '{param}': the string contains a NUL character.", param=param,
                             code="invalid_value")
    return value


def integer(value: Any, param: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(param, "an integer", value)
    if not low <= value <= high:
        raise InvalidRequest(f"Invalid '{param}': expected a value between {low} and {high}, but got {value} "
                             "instead.", param=param, code="invalid_value")
    return value


def number(value: Any, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _type_error(param, "a number", value)
    return float(value)


def boolean(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise _type_error(param, "a boolean", value)
    return value


def id_list(value: Any, param: str) -> list[str]:
    if not isinstance(value, list):
        raise _type_error(param, "an array", value)
    if len(value) > MAX_FILES_PER_REQUEST:
        raise InvalidRequest(f"Invalid '{param}': at most {MAX_FILES_PER_REQUEST} files per request.", param=param,
                             code="array_above_max_length")
    out = [string(v, f"{param}[{i}]", max_len=80) for i, v in enumerate(value)]
    if len(set(out)) != len(out):
        raise InvalidRequest(f"Invalid '{param}': a file is listed twice.", param=param, code="invalid_value")
    return [v for v in out if v is not None]


def chunking_strategy(value: Any, param: str = "chunking_strategy") -> dict[str, Any]:
    """``auto`` or ``static``, stored (and returned on files) as the static sizes it means."""
    if value is None:
        return AUTO
    body = check_object(value, ("type", "static"), param)
    kind = required(body, "type", f"{param}.type")
    if kind == "auto":
        check_object(body, ("type",), param)
        return AUTO
    if kind != "static":
        raise InvalidRequest(f"Invalid value: '{kind}'. Supported values are: 'auto' and 'static'.",
                             param=f"{param}.type", code="invalid_value")
    static = check_object(required(body, "static", f"{param}.static"),
                          ("max_chunk_size_tokens", "chunk_overlap_tokens"), f"{param}.static")
    size = integer(required(static, "max_chunk_size_tokens", f"{param}.static.max_chunk_size_tokens"),
                   f"{param}.static.max_chunk_size_tokens", 100, 4096)
    overlap = integer(required(static, "chunk_overlap_tokens", f"{param}.static.chunk_overlap_tokens"),
                      f"{param}.static.chunk_overlap_tokens", 0, size // 2)
    return {"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}


def attributes(value: Any, param: str = "attributes") -> dict[str, str | float | bool] | None:
    """16 keys of at most 64 characters; values strings (512), numbers or booleans."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _type_error(param, "an object", value)
    if len(value) > 16:
        raise InvalidRequest(f"Invalid '{param}': at most 16 attributes, got {len(value)}.", param=param,
                             code="object_above_max_properties")
    for key, item in value.items():
        if len(key) > 64:
            raise InvalidRequest(f"Invalid '{param}': the key '{key[:20]}...' is longer than 64 characters.",
                                 param=param, code="invalid_value")
        if isinstance(item, str):
            string(item, f"{param}.{key}", max_len=512)
        elif not isinstance(item, bool):
            number(item, f"{param}.{key}")
    return dict(value)


def expires_after(value: Any, param: str = "expires_after") -> int | None:
    """The days of ``{"anchor": "last_active_at", "days": N}``."""
    if value is None:
        return None
    body = check_object(value, ("anchor", "days"), param)
    if required(body, "anchor", f"{param}.anchor") != "last_active_at":
        raise InvalidRequest("Invalid value for 'expires_after.anchor': expected 'last_active_at'.",
                             param=f"{param}.anchor", code="invalid_value")
    return integer(required(body, "days", f"{param}.days"), f"{param}.days", 1, 365)


def metadata(value: Any) -> dict[str, str]:
    return validate_metadata(value)


def queries(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or len(items) > MAX_QUERIES:
        raise InvalidRequest(f"Invalid 'query': give a string or 1 to {MAX_QUERIES} strings.", param="query",
                             code="invalid_value")
    out = [string(q, "query" if not isinstance(value, list) else f"query[{i}]", max_len=MAX_QUERY_CHARS)
           for i, q in enumerate(items)]
    if not any(q and q.strip() for q in out):
        raise InvalidRequest("Invalid 'query': the query is empty.", param="query", code="invalid_value")
    return [q for q in out if q and q.strip()]
