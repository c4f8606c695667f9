"""Request bodies of the Conversations API, checked against the ``openai`` SDK's types.

An item is accepted only if it is a valid input item (``ResponseInputItemParam``) *and*, once
normalised (id and status filled in), a valid ``ConversationItem``: whatever is stored can always
be listed back. A type that is an input but not a conversation item (``item_reference``,
``compaction_trigger``) is a 400, never a conversation that later fails to list.
"""

from __future__ import annotations

import typing
from typing import Any

from openai.types.conversations.conversation_item import ConversationItem
from openai.types.responses.response_includable import ResponseIncludable
from openai.types.responses.response_input_item_param import ResponseInputItemParam
from pydantic import TypeAdapter, ValidationError

from rejoinder.api.errors import from_validation_error
from rejoinder.api.items import adapter_of, item_type, normalize_item, validate_item
from rejoinder.api.known_keys import refuse_unknown_keys
from rejoinder.api.metadata import validate_metadata
from rejoinder.errors import InvalidRequest
from rejoinder.ids import new_item_id
from rejoinder.item_types import ItemType
from rejoinder.tools.registry import BUILTIN

MAX_ITEMS = 20
INCLUDABLE: frozenset[str] = frozenset(typing.get_args(ResponseIncludable))

# Input item types the Responses engine has no special handling for: stored and listed as they are.
_STORED = TypeAdapter(ConversationItem)
# Types whose returned object requires a status that the input may omit.
_NEEDS_STATUS = frozenset(
    typing.get_args(m.model_fields["type"].annotation)[0]
    for m in typing.get_args(typing.get_args(ConversationItem)[0])
    if "status" in m.model_fields and m.model_fields["status"].is_required()
)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return body


def _no_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise InvalidRequest(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")


def _with_defaults(item: dict[str, Any], kind: str) -> dict[str, Any]:
    """Fill in what the API fills in: an id of the type's prefix, a status, ``detail: auto`` on images."""
    out = dict(item)
    if kind in _NEEDS_STATUS and out.get("status") is None:
        out["status"] = "completed"
    if not out.get("id"):
        out["id"] = new_item_id(kind)
    if kind == "message" and isinstance(out.get("content"), list):
        out["content"] = [{**p, "detail": "auto"} if isinstance(p, dict) and p.get("type") == "input_image"
                          and "detail" not in p else p for p in out["content"]]
    return out


def _stored_shape_error(exc: ValidationError, kind: str, param: str) -> InvalidRequest:
    """A readable 400 for an item the SDK's ``ConversationItem`` rejects (union errors are noisy)."""
    err = next((e for e in exc.errors() if e["type"] != "literal_error"), exc.errors()[0])
    where = ".".join(str(p) for p in err["loc"][1:] if not str(p)[:1].isupper())
    return InvalidRequest(f"Invalid '{param}': not a valid '{kind}' item ({where or 'item'}: {err['msg']}).",
                          param=param, code="invalid_value")


def validate_conversation_item(item: Any, param: str, table: dict[str, ItemType] | None = None) -> dict[str, Any]:
    """One item as it will be stored and returned: validated by its row of the item table, with an
    id and a status. A type the server serves is checked as a response's input is; one it does not
    run is stored as given once the SDK's type accepts it."""
    rows = table if table is not None else BUILTIN.item_types
    kind = item_type(item, param)
    row = rows.get(kind) if isinstance(kind, str) else None
    if row is None or not row.in_conversations or (row.param is None and kind != "message"):
        supported = [t for t, r in rows.items() if r.in_conversations and (r.param is not None or t == "message")]
        raise InvalidRequest(
            f"Invalid value: '{kind}'. Supported values are: {', '.join(repr(t) for t in supported)}.",
            param=f"{param}.type", code="invalid_value",
        )
    if row.input == "served":
        out = normalize_item(validate_item(_with_defaults(item, kind), param, rows), rows)
    else:
        refuse_unknown_keys(item, ResponseInputItemParam, param)
        out = _with_defaults(item, kind)
        try:
            adapter_of(row.param).validate_python(out)
        except ValidationError as exc:
            raise from_validation_error(exc, param) from exc
    try:
        _STORED.validate_python(out)
    except ValidationError as exc:
        raise _stored_shape_error(exc, kind, param) from exc
    return out


def validate_items(value: Any, param: str = "items", required: bool = True,
                   table: dict[str, ItemType] | None = None) -> list[dict[str, Any]]:
    if value is None:
        if required:
            raise InvalidRequest(f"Missing required parameter: '{param}'.", param=param,
                                 code="missing_required_parameter")
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"Invalid type for '{param}': expected an array, but got {type(value).__name__} "
                             "instead.", param=param, code="invalid_type")
    if len(value) > MAX_ITEMS:
        raise InvalidRequest(
            f"Invalid '{param}': array too long. Expected an array with maximum length {MAX_ITEMS}, "
            f"but got an array with length {len(value)} instead.",
            param=param, code="array_above_max_length",
        )
    items = [validate_conversation_item(item, f"{param}[{i}]", table) for i, item in enumerate(value)]
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item["id"] in seen:
            raise InvalidRequest(f"Duplicate item found with id {item['id']}.", param=f"{param}[{i}].id",
                                 code="duplicate_item")
        seen.add(item["id"])
    return items


def validate_create(body: Any, table: dict[str, ItemType] | None = None) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """``POST /v1/conversations``: (metadata, items). An empty body is an empty conversation."""
    body = _object({} if body is None else body)
    _no_unknown(body, {"items", "metadata"})
    return validate_metadata(body.get("metadata")), validate_items(body.get("items"), required=False, table=table)


def validate_update(body: Any) -> dict[str, str]:
    """``POST /v1/conversations/{id}``: ``metadata`` is required; null clears it."""
    body = _object(body)
    _no_unknown(body, {"metadata"})
    if "metadata" not in body:
        raise InvalidRequest("Missing required parameter: 'metadata'.", param="metadata",
                             code="missing_required_parameter")
    return validate_metadata(body["metadata"])


def validate_add_items(body: Any, table: dict[str, ItemType] | None = None) -> list[dict[str, Any]]:
    body = _object(body)
    _no_unknown(body, {"items"})
    return validate_items(body.get("items"), table=table)


def validate_include(values: list[str] | None) -> None:
    """Every ``include`` value OpenAI defines is accepted: items are stored whole, so each one is a no-op."""
    for value in values or []:
        if value not in INCLUDABLE:
            raise InvalidRequest(
                f"Invalid value: '{value}'. Supported values are: {', '.join(repr(v) for v in sorted(INCLUDABLE))}.",
                param="include", code="invalid_value",
            )
