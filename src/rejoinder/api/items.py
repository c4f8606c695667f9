"""Validating and normalising items: the input of a response, and items added to a conversation.

Each item type is checked against the ``openai`` SDK's own param type for it. Normalising gives
every item the shape it has when the API returns it: an id of the right prefix (ids that came
with an item are kept), a ``type``, and for messages a list of content parts and a status.
"""

from __future__ import annotations

from typing import Any

from openai.types.responses import (
    EasyInputMessageParam,
    ResponseFileSearchToolCallParam,
    ResponseFunctionToolCallParam,
    ResponseFunctionWebSearchParam,
    ResponseReasoningItemParam,
)
from openai.types.responses import response_input_item_param as P
from pydantic import TypeAdapter, ValidationError

from rejoinder.api.errors import from_validation_error
from rejoinder.errors import InvalidRequest
from rejoinder.ids import new_item_id

_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "function_call": TypeAdapter(ResponseFunctionToolCallParam),
    "function_call_output": TypeAdapter(P.FunctionCallOutput),
    "mcp_list_tools": TypeAdapter(P.McpListTools),
    "mcp_call": TypeAdapter(P.McpCall),
    "mcp_approval_request": TypeAdapter(P.McpApprovalRequest),
    "mcp_approval_response": TypeAdapter(P.McpApprovalResponse),
    "reasoning": TypeAdapter(ResponseReasoningItemParam),
    "web_search_call": TypeAdapter(ResponseFunctionWebSearchParam),
    "file_search_call": TypeAdapter(ResponseFileSearchToolCallParam),
    "item_reference": TypeAdapter(P.ItemReference),
}
_MESSAGE = TypeAdapter(EasyInputMessageParam)
_PART_TYPES = {
    "user": {"input_text", "input_image", "input_file"},
    "system": {"input_text", "input_image", "input_file"},
    "developer": {"input_text", "input_image", "input_file"},
    "assistant": {"output_text", "refusal", "input_text"},
}
ITEM_TYPES = ("message", *_ADAPTERS)
# Fields the SDK leaves optional but without which an item cannot be paired or replayed.
_REQUIRED = {
    "function_call": ("call_id", "name", "arguments"),
    "function_call_output": ("call_id",),
    "mcp_approval_response": ("approval_request_id", "approve"),
    "item_reference": ("id",),
}


def _check_message(item: dict[str, Any], param: str) -> None:
    role = item.get("role")
    if role not in _PART_TYPES:
        raise InvalidRequest(
            f"Invalid value: '{role}'. Supported values are: 'user', 'system', 'developer' and 'assistant'.",
            param=f"{param}.role", code="invalid_value",
        )
    content = item.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid type for '{param}.content': expected a string or an array of content parts.",
                             param=f"{param}.content", code="invalid_type")
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in _PART_TYPES[role]:
            raise InvalidRequest(
                f"Invalid value: '{kind}'. Supported values for role '{role}' are: "
                f"{', '.join(sorted(_PART_TYPES[role]))}.",
                param=f"{param}.content[{j}].type", code="invalid_value",
            )
        if kind in ("input_text", "output_text") and not isinstance(part.get("text"), str):
            raise InvalidRequest(f"Missing required parameter: '{param}.content[{j}].text'.",
                                 param=f"{param}.content[{j}].text", code="missing_required_parameter")
        if kind == "input_image" and not (part.get("image_url") or part.get("file_id")):
            raise InvalidRequest(f"Missing required parameter: '{param}.content[{j}].image_url'.",
                                 param=f"{param}.content[{j}].image_url", code="missing_required_parameter")
    if role != "assistant":
        try:
            _MESSAGE.validate_python({"role": role, "content": content})
        except ValidationError as exc:
            raise from_validation_error(exc, f"{param}") from exc


def item_type(item: Any, param: str) -> Any:
    """The item's type; an object with a ``role`` and no ``type`` is a message (the Agents SDK relies on it)."""
    if not isinstance(item, dict):
        raise InvalidRequest(f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type")
    kind = item.get("type")
    return "message" if kind is None and "role" in item else kind


def validate_item(item: Any, param: str) -> dict[str, Any]:
    """Check one item; returns it with ``type`` filled in."""
    kind = item_type(item, param)
    if kind == "message":
        _check_message(item, param)
        return {**item, "type": "message"}
    adapter = _ADAPTERS.get(kind) if isinstance(kind, str) else None
    if adapter is None:
        raise InvalidRequest(
            f"Invalid value: '{kind}'. Supported item types are: {', '.join(ITEM_TYPES)}.",
            param=f"{param}.type", code="invalid_value",
        )
    try:
        adapter.validate_python(item)
    except ValidationError as exc:
        raise from_validation_error(exc, param) from exc
    for name in _REQUIRED.get(kind, ()):
        if item.get(name) is None:
            raise InvalidRequest(f"Missing required parameter: '{param}.{name}'.", param=f"{param}.{name}",
                                 code="missing_required_parameter")
    return item


def _parts(role: str, content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        if role == "assistant":
            return [{"type": "output_text", "text": content, "annotations": []}]
        return [{"type": "input_text", "text": content}]
    parts = []
    for part in content:
        if part["type"] == "output_text":
            part = {"annotations": [], **part}
        parts.append(part)
    return parts


def normalize_item(item: dict[str, Any]) -> dict[str, Any]:
    """The stored and returned shape of a validated item."""
    kind = item["type"]
    out = dict(item)
    if not out.get("id"):
        out["id"] = new_item_id(kind)
    if kind == "message":
        out["content"] = _parts(out["role"], out.get("content", ""))
        out.setdefault("status", "completed")
    elif kind in ("function_call_output", "function_call"):
        out.setdefault("status", "completed")
    return out
