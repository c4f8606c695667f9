"""The ``tools`` of a request: every tool type the SDK defines is checked against its own type;
the ones this server runs are accepted, the others refused with a 400 naming the type.

A tool echoed in the Response carries every key its type has: a function tool sent without
``strict`` (or ``description``, or ``parameters``) is echoed with it as null, as OpenAI does and
as the Open Responses schema requires.
"""

from __future__ import annotations

import typing
from typing import Any

from openai.types.responses.tool_param import ToolParam
from pydantic import TypeAdapter, ValidationError

from rejoinder.api.errors import from_validation_error
from rejoinder.errors import InvalidRequest

IMPLEMENTED = ("function", "mcp")
# Each tool type the SDK defines, by its ``type`` value.
_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    kind: TypeAdapter(member)
    for member in typing.get_args(ToolParam)
    for kind in typing.get_args(typing.get_type_hints(member)["type"])
}
_ECHOED_KEYS = {"function": ("type", "name", "description", "parameters", "strict")}


def _as_given(kind: str, tool: dict[str, Any]) -> dict[str, Any]:
    """OpenAI accepts a function tool without ``strict``/``parameters``; the SDK types mark them required."""
    return {"strict": None, "parameters": None, **tool} if kind == "function" else tool


def validate_tools(tools: list[Any]) -> list[dict[str, Any]]:
    """The tools as echoed in the Response; a 400 for a malformed tool or a type this server does not run."""
    echoed = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(tool, dict):
            raise InvalidRequest(f"Invalid type for 'tools[{i}]': expected an object.", param=f"tools[{i}]",
                                 code="invalid_type")
        adapter = _ADAPTERS.get(kind) if isinstance(kind, str) else None
        if adapter is None:
            raise InvalidRequest(
                f"Invalid value: '{kind}'. Supported values are: {', '.join(repr(k) for k in _ADAPTERS)}.",
                param=f"tools[{i}].type", code="invalid_value")
        try:
            adapter.validate_python(_as_given(kind, tool))
        except ValidationError as exc:
            raise from_validation_error(exc, f"tools[{i}]") from exc
        if kind not in IMPLEMENTED:
            raise InvalidRequest(
                f"Tool type '{kind}' is not supported by this server yet. Supported: {', '.join(IMPLEMENTED)}.",
                param=f"tools[{i}].type", code="unsupported_value")
        keys = _ECHOED_KEYS.get(kind)
        echoed.append({**dict.fromkeys(keys), **tool} if keys else tool)
    return echoed
