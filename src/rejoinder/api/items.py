"""Validating and normalising items: the input of a response, and items added to a conversation.

Each item type is checked against the ``openai`` SDK's own param type for it, as its row of the
one item table says (item_types.py; the server's ``ToolKinds.item_types``). Normalising gives
every item the shape it has when the API returns it: an id of the right prefix (ids that came
with an item are kept), a ``type``, and for messages a list of content parts and a status.
"""

from __future__ import annotations

from typing import Any

from openai.types.responses import ResponseInputFileParam, ResponseInputImageParam, ResponseInputTextParam
from openai.types.responses.response_input_item_param import ResponseInputItemParam
from pydantic import TypeAdapter, ValidationError

from rejoinder.api.errors import from_validation_error
from rejoinder.api.known_keys import refuse_unknown_keys
from rejoinder.errors import InvalidRequest
from rejoinder.ids import new_item_id
from rejoinder.item_types import ItemType
from rejoinder.tools.registry import BUILTIN

ItemTable = dict[str, ItemType]

_TEXT_FIELD = {"input_text": "text", "output_text": "text", "refusal": "refusal"}
_PART_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "input_text": TypeAdapter(ResponseInputTextParam),
    "input_image": TypeAdapter(ResponseInputImageParam),
    "input_file": TypeAdapter(ResponseInputFileParam),
}
_PART_TYPES = {
    "user": {"input_text", "input_image", "input_file"},
    "system": {"input_text", "input_image", "input_file"},
    "developer": {"input_text", "input_image", "input_file"},
    "assistant": {"output_text", "refusal", "input_text"},
}
MAX_ID_LENGTH = 120  # the length of the item id columns (store/schema.py)
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}  # an SDK param type's adapter, made once


def adapter_of(param_type: Any) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(param_type)
    if adapter is None:
        adapter = _ADAPTERS[param_type] = TypeAdapter(param_type)
    return adapter


def _table(table: ItemTable | None) -> ItemTable:
    return table if table is not None else BUILTIN.item_types


def served_types(table: ItemTable | None = None) -> tuple[str, ...]:
    """The item types a response's input may hold."""
    return tuple(t for t, row in _table(table).items() if row.input == "served")


# The built-in table's uses, by name.
ITEM_TYPES = served_types()
NOT_AVAILABLE = tuple(t for t, row in BUILTIN.item_types.items() if row.input == "not_available")


def check_id(value: Any, param: str) -> None:
    """An id given by the client: a string that fits the id columns and holds no NUL. Both limits
    are PostgreSQL's (a longer id or a NUL would fail the write there, not be refused); SQLite
    keeps them too, so a store can move between the two."""
    if not isinstance(value, str):
        raise InvalidRequest(f"Invalid type for '{param}': expected a string.", param=param, code="invalid_type")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRequest(
            f"Invalid '{param}': string too long. Expected a string with maximum length {MAX_ID_LENGTH}, "
            f"but got a string with length {len(value)} instead.", param=param, code="string_above_max_length")
    if "\x00" in value:
        raise InvalidRequest(f"Invalid value for '{param}': an id cannot contain a NUL character.", param=param,
                             code="invalid_value")


def _check_message(item: dict[str, Any], param: str) -> None:
    role = item.get("role")
    if not isinstance(role, str) or role not in _PART_TYPES:
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
        if not isinstance(kind, str) or kind not in _PART_TYPES[role]:
            raise InvalidRequest(
                f"Invalid value: '{kind}'. Supported values for role '{role}' are: "
                f"{', '.join(sorted(_PART_TYPES[role]))}.",
                param=f"{param}.content[{j}].type", code="invalid_value",
            )
        if kind in _TEXT_FIELD and not isinstance(part.get(_TEXT_FIELD[kind]), str):
            field = f"{param}.content[{j}].{_TEXT_FIELD[kind]}"
            if part.get(_TEXT_FIELD[kind]) is None:
                raise InvalidRequest(f"Missing required parameter: '{field}'.", param=field,
                                     code="missing_required_parameter")
            raise InvalidRequest(f"Invalid type for '{field}': expected a string.", param=field, code="invalid_type")
        if kind == "input_image" and not (part.get("image_url") or part.get("file_id")):
            raise InvalidRequest(f"Missing required parameter: '{param}.content[{j}].image_url'.",
                                 param=f"{param}.content[{j}].image_url", code="missing_required_parameter")
        if kind in _PART_ADAPTERS:  # each part against its own type: errors name the part's own field
            try:
                _PART_ADAPTERS[kind].validate_python(_with_detail(part))
            except ValidationError as exc:
                raise from_validation_error(exc, f"{param}.content[{j}]") from exc


def _with_detail(part: dict[str, Any]) -> dict[str, Any]:
    """An image part's ``detail`` defaults to "auto", as OpenAI documents (the SDK's type requires it)."""
    return {"detail": "auto", **part} if part.get("type") == "input_image" else part


def item_type(item: Any, param: str) -> Any:
    """The item's type; an object with a ``role`` and no ``type`` is a message (the Agents SDK relies on it)."""
    if not isinstance(item, dict):
        raise InvalidRequest(f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type")
    kind = item.get("type")
    return "message" if kind is None and "role" in item else kind


def _local_shell_output(item: dict[str, Any], param: str, table: ItemTable | None) -> dict[str, Any]:
    """The SDK's type names the call by ``id``; the Agents SDK sends ``call_id``: both are the call's id."""
    check_id(item["call_id"], f"{param}.call_id")
    rest = {k: v for k, v in item.items() if k != "call_id"}
    if rest.get("id") is None:
        return validate_item({**rest, "id": item["call_id"]}, param, table)
    return {**validate_item(rest, param, table), "call_id": item["call_id"]}


def validate_item(item: Any, param: str, table: ItemTable | None = None) -> dict[str, Any]:
    """Check one input item against its row of the item table; returns it with ``type`` filled in."""
    rows = _table(table)
    kind = item_type(item, param)
    if kind == "local_shell_call_output" and "call_id" in item:
        return _local_shell_output(item, param, table)
    refuse_unknown_keys(item, ResponseInputItemParam, param)
    if item.get("id") is not None:  # a message's id goes unchecked below
        check_id(item["id"], f"{param}.id")
    if kind == "message":
        _check_message(item, param)
        return {**item, "type": "message"}
    if kind == "reasoning" and item.get("id") is None:
        item = {**item, "id": new_item_id("reasoning")}  # Codex sends its reasoning items back without ids
    row = rows.get(kind) if isinstance(kind, str) else None
    if row is not None and row.input == "not_available":
        raise InvalidRequest(f"Input item type '{kind}' is not available on this server.", param=f"{param}.type",
                             code="unsupported_value")
    if row is None or row.param is None:
        raise InvalidRequest(
            f"Invalid value: '{kind}'. Supported item types are: {', '.join(served_types(rows))}.",
            param=f"{param}.type", code="invalid_value",
        )
    try:
        adapter_of(row.param).validate_python(item)
    except ValidationError as exc:
        raise from_validation_error(exc, param) from exc
    for name in row.required:
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
        parts.append(_with_detail(part))
    return parts


def normalize_item(item: dict[str, Any], table: ItemTable | None = None) -> dict[str, Any]:
    """The stored and returned shape of a validated item: an id of its type's prefix, the fields
    its row fills in (a status), a message's content as parts."""
    kind = item["type"]
    row = _table(table).get(kind)
    out = dict(item)
    if not out.get("id"):
        out["id"] = new_item_id(kind)
    if kind == "message":
        out["content"] = _parts(out["role"], out.get("content", ""))
    for key, value in (row.defaults if row is not None else {}).items():
        if out.get(key) is None:
            out[key] = value
    return out
