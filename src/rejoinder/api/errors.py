"""Turning pydantic validation errors into OpenAI's 400 messages."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from rejoinder.errors import InvalidRequest


def param_path(loc: tuple[Any, ...], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before", "union_tag", "tagged-union", "str", "int", "float"):
            continue
        elif "[" in str(part) or str(part).startswith(("list", "dict", "union", "literal")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


_TYPE_WORDS = {
    "string_type": "a string", "int_type": "an integer", "int_parsing": "an integer", "float_type": "a number",
    "float_parsing": "a number", "bool_type": "a boolean", "bool_parsing": "a boolean", "dict_type": "an object",
    "list_type": "an array", "model_type": "an object", "typed_dict_type": "an object", "model_attributes_type":
    "an object",
}


def _got(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", dict: "an object",
             list: "an array", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def from_validation_error(exc: ValidationError, prefix: str = "") -> InvalidRequest:
    err = exc.errors()[0]
    param = param_path(tuple(err["loc"]), prefix) or None
    kind = err["type"]
    if kind == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    if kind == "extra_forbidden":
        return InvalidRequest(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")
    if kind in _TYPE_WORDS:
        return InvalidRequest(
            f"Invalid type for '{param}': expected {_TYPE_WORDS[kind]}, but got {_got(err.get('input'))} instead.",
            param=param, code="invalid_type",
        )
    ctx = err.get("ctx") or {}
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bound = next(iter(ctx.values()), "")
        word = "above maximum" if kind.startswith("less") else "below minimum"
        op = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}[kind]
        return InvalidRequest(
            f"Invalid '{param}': value {word} value. "
            f"Expected a value {op} {bound}, but got {err.get('input')} instead.",
            param=param, code="invalid_value",
        )
    if kind == "literal_error":
        return InvalidRequest(
            f"Invalid value: '{err.get('input')}'. Supported values are: {ctx.get('expected', '')}.",
            param=param, code="invalid_value",
        )
    return InvalidRequest(f"Invalid '{param}': {err['msg']}.", param=param, code="invalid_value")
