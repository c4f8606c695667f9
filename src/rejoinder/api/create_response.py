"""The body of ``POST /v1/responses``: validated, with every tool and input item checked.

Parameters OpenAI accepts but Rejoinder cannot honour are refused with a 400 naming them, never
silently ignored.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import jsonschema
from openai.types import shared_params as SP
from openai.types.responses import FunctionToolParam, ResponseFormatTextJSONSchemaConfigParam, ResponseTextConfigParam
from openai.types.responses import tool_param as TP
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from rejoinder.api.errors import from_validation_error
from rejoinder.api.items import check_id, validate_item
from rejoinder.api.metadata import validate_metadata
from rejoinder.errors import InvalidRequest

_TOOL_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "function": TypeAdapter(FunctionToolParam),
    "mcp": TypeAdapter(TP.Mcp),
}
_TEXT = TypeAdapter(ResponseTextConfigParam)
_FORMATS: dict[str, TypeAdapter[Any]] = {
    "text": TypeAdapter(SP.ResponseFormatText),
    "json_object": TypeAdapter(SP.ResponseFormatJSONObject),
    "json_schema": TypeAdapter(ResponseFormatTextJSONSchemaConfigParam),
}
_SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SUPPORTED_INCLUDE: frozenset[str] = frozenset()


class ConversationRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str


class CreateResponse(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str
    input: str | list[Any]
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation: str | ConversationRef | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_output_tokens: int | None = Field(default=None, ge=16)
    text: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    store: bool = True
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    background: bool = False
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    tools: list[Any] = Field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True
    max_tool_calls: int | None = Field(default=None, ge=1)
    include: list[str] | None = None
    reasoning: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    service_tier: str | None = None
    top_logprobs: int | None = None
    prompt: dict[str, Any] | None = None


def _float_ok(data: dict[str, Any]) -> dict[str, Any]:
    """JSON has one number type: accept integers where a float is expected (strict mode would not)."""
    for key in ("temperature", "top_p"):
        if isinstance(data.get(key), int) and not isinstance(data.get(key), bool):
            data[key] = float(data[key])
    return data


def _strict_schema_problem(schema: Any, path: str = "") -> str | None:
    """OpenAI's strict mode: every object closes ``additionalProperties`` and requires every property."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" or "properties" in schema:
            if schema.get("additionalProperties", True) is not False:
                return f"In context={path or '()'}, 'additionalProperties' is required to be supplied and to be false."
            props = set((schema.get("properties") or {}).keys())
            missing = props - set(schema.get("required") or [])
            if missing:
                return (f"In context={path or '()'}, 'required' is required to be supplied and to be an array "
                        f"including every key in properties. Missing '{sorted(missing)[0]}'.")
        for key, sub in schema.items():
            problem = _strict_schema_problem(sub, f"{path}.{key}" if path else key)
            if problem:
                return problem
    elif isinstance(schema, list):
        for i, sub in enumerate(schema):
            problem = _strict_schema_problem(sub, f"{path}[{i}]")
            if problem:
                return problem
    return None


def validate_text_format(text: dict[str, Any] | None) -> None:
    if not text:
        return
    try:  # the SDK's types, the format's by its own type: an error names the field
        _TEXT.validate_python({k: v for k, v in text.items() if k != "format"}, strict=True)
    except ValidationError as exc:
        raise from_validation_error(exc, "text") from exc
    fmt = text.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or not isinstance(fmt.get("type"), str) or fmt["type"] not in _FORMATS:
        raise InvalidRequest(
            f"Invalid value: '{(fmt or {}).get('type') if isinstance(fmt, dict) else fmt}'. "
            "Supported values are: 'text', 'json_object' and 'json_schema'.",
            param="text.format.type", code="invalid_value",
        )
    try:
        _FORMATS[fmt["type"]].validate_python(fmt, strict=True)
    except ValidationError as exc:
        if fmt["type"] != "json_schema" or not {e["loc"][0] for e in exc.errors()} <= {"name", "schema"}:
            raise from_validation_error(exc, "text.format") from exc
    if fmt["type"] != "json_schema":  # name and schema have their own, OpenAI-worded, checks below
        return
    name = fmt.get("name")
    if not isinstance(name, str) or not _SCHEMA_NAME.match(name):
        raise InvalidRequest("Invalid 'text.format.name': must match ^[a-zA-Z0-9_-]{1,64}$.",
                             param="text.format.name", code="invalid_value")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise InvalidRequest("Missing required parameter: 'text.format.schema'.", param="text.format.schema",
                             code="missing_required_parameter")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRequest(f"Invalid schema for response_format '{name}': {exc.message}",
                             param="text.format.schema", code="invalid_json_schema") from exc
    if fmt.get("strict"):
        problem = _strict_schema_problem(schema)
        if problem:
            raise InvalidRequest(f"Invalid schema for response_format '{name}': {problem}",
                                 param="text.format.schema", code="invalid_json_schema")


def _refuse_unsupported(req: CreateResponse) -> None:
    if req.prompt is not None:
        raise InvalidRequest("Stored prompts are not supported by this server.", param="prompt",
                             code="unsupported_parameter")
    if req.top_logprobs:
        raise InvalidRequest("top_logprobs is not supported by this server.", param="top_logprobs",
                             code="unsupported_parameter")
    for value in req.include or []:
        if value not in SUPPORTED_INCLUDE:
            raise InvalidRequest(f"include value '{value}' is not supported by this server.", param="include",
                                 code="unsupported_value")
    if req.service_tier not in (None, "auto", "default"):
        raise InvalidRequest(f"service_tier '{req.service_tier}' is not supported by this server.",
                             param="service_tier", code="unsupported_value")
    reasoning = req.reasoning or {}
    if reasoning.get("summary") is not None or reasoning.get("generate_summary") is not None:
        raise InvalidRequest("Reasoning summaries are not supported by this server.", param="reasoning.summary",
                             code="unsupported_value")
    if (req.stream_options or {}).keys() - {"include_obfuscation"}:
        raise InvalidRequest("Unknown stream_options field.", param="stream_options", code="unknown_parameter")
    if req.stream_options is not None and not req.stream:
        raise InvalidRequest("stream_options can only be set when stream is true.", param="stream_options",
                             code="invalid_value")


def validate_create(body: Any) -> CreateResponse:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    try:
        req = CreateResponse.model_validate(_float_ok(dict(body)))
    except ValidationError as exc:
        raise from_validation_error(exc) from exc
    _refuse_unsupported(req)
    validate_metadata(req.metadata)
    validate_text_format(req.text)
    if isinstance(req.input, list):
        req.input = [validate_item(item, f"input[{i}]") for i, item in enumerate(req.input)]
    for i, tool in enumerate(req.tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        adapter = _TOOL_ADAPTERS.get(kind) if isinstance(kind, str) else None
        if adapter is None:
            raise InvalidRequest(f"Tool type '{kind}' is not supported by this server. Supported: function, mcp.",
                                 param=f"tools[{i}].type", code="unsupported_value")
        # OpenAI accepts a function tool without `strict`/`parameters`; the SDK types mark them required.
        checked = {"strict": None, "parameters": None, **tool} if kind == "function" else tool
        try:
            adapter.validate_python(checked)
        except ValidationError as exc:
            raise from_validation_error(exc, f"tools[{i}]") from exc
    if isinstance(req.tool_choice, str) and req.tool_choice not in ("auto", "none", "required"):
        raise InvalidRequest(
            f"Invalid value: '{req.tool_choice}'. Supported values are: 'none', 'auto' and 'required'.",
            param="tool_choice", code="invalid_value",
        )
    if req.previous_response_id is not None:
        check_id(req.previous_response_id, "previous_response_id")
    if req.conversation is not None:
        check_id(req.conversation if isinstance(req.conversation, str) else req.conversation.id, "conversation")
    if req.previous_response_id and req.conversation:
        raise InvalidRequest(
            "Mutually exclusive parameters: Ensure you are only providing one of: 'previous_response_id' or "
            "'conversation'.", param="previous_response_id", code="mutually_exclusive_parameters",
        )
    return req
