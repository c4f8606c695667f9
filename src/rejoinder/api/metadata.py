"""OpenAI's metadata rules: at most 16 string pairs, keys up to 64 characters, values up to 512."""

from __future__ import annotations

from typing import Any

from rejoinder.errors import InvalidRequest


def validate_metadata(value: Any, param: str = "metadata", max_value: int = 512) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type")
    if len(value) > 16:
        raise InvalidRequest(
            f"Invalid '{param}': too many properties. Expected an object with at most 16 properties, "
            f"but got an object with {len(value)} properties instead.",
            param=param, code="object_above_max_properties",
        )
    for key, val in value.items():
        if len(key) > 64:
            raise InvalidRequest(
                f"Invalid '{param}': metadata key '{key[:20]}...' is longer than 64 characters.",
                param=param, code="invalid_metadata",
            )
        if not isinstance(val, str):
            raise InvalidRequest(f"Invalid type for '{param}.{key}': expected a string.", param=f"{param}.{key}",
                                 code="invalid_type")
        if len(val) > max_value:
            raise InvalidRequest(
                f"Invalid '{param}.{key}': string too long. Expected a string with maximum length {max_value}, "
                f"but got a string with length {len(val)} instead.",
                param=f"{param}.{key}", code="string_above_max_length",
            )
    return dict(value)
