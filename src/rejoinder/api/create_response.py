"""The body of ``POST /v1/responses``: validated, with every tool and input item checked.

Unknown keys are refused at every depth (``known_keys``); each parameter is honoured, accepted as a
hint, or refused with a 400 naming it (``parameters``); tools are checked by ``tools``. Nothing a
client sends is silently ignored.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import jsonschema
from openai.types import shared_params as SP
from openai.types.responses import ResponseFormatTextJSONSchemaConfigParam, ResponseTextConfigParam
from openai.types.responses import response_create_params as R
from openai.types.responses import response_input_item_param as P
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from rejoinder.api.errors import from_validation_error
from rejoinder.api.items import check_id, validate_item
from rejoinder.api.known_keys import refuse_unknown_keys
from rejoinder.api.metadata import validate_metadata
from rejoinder.api.parameters import check_parameters
from rejoinder.api.tools import validate_tools
from rejoinder.errors import InvalidRequest
from rejoinder.tools.registry import BUILTIN, ToolKinds

_TEXT = TypeAdapter(ResponseTextConfigParam)
_FORMATS: dict[str, TypeAdapter[Any]] = {
    "text": TypeAdapter(SP.ResponseFormatText),
    "json_object": TypeAdapter(SP.ResponseFormatJSONObject),
    "json_schema": TypeAdapter(ResponseFormatTextJSONSchemaConfigParam),
}
_COMPACTION_TRIGGER = TypeAdapter(P.CompactionTrigger)
_SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# The body's top level, for the unknown-key walk (input items are walked one by one, in validate_item).
_BODY = R.ResponseCreateParamsNonStreaming
_FLOATS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")


class ConversationRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str


class CreateResponse(BaseModel):
    """Every field of ``ResponseCreateParams`` (and the client extras): ``api/parameters.py`` says
    which are honoured, which are hints, and which are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str
    input: str | list[Any]
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation: str | ConversationRef | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    max_output_tokens: int | None = Field(default=None, ge=16)
    text: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    client_metadata: dict[str, Any] | None = None
    store: bool = True
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    background: bool = False
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    tools: list[Any] = Field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True
    max_tool_calls: int | None = Field(default=None, ge=1)
    include: list[Any] | None = None
    reasoning: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    service_tier: str | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    prompt: dict[str, Any] | None = None
    # hints (api/parameters.py)
    prompt_cache_options: dict[str, Any] | None = None
    background_options: dict[str, Any] | None = None
    image: dict[str, Any] | None = None
    access_programs: dict[str, Any] | None = None
    context_management: list[Any] | None = None
    moderation: dict[str, Any] | None = None
    # not a parameter: set when the input ends with a compaction_trigger item (compaction: issue 19)
    compaction_requested: bool = False

    @property
    def logprobs(self) -> bool:
        """Whether the output text carries log probabilities (``include``, as on OpenAI)."""
        return "message.output_text.logprobs" in (self.include or ())


def _float_ok(data: dict[str, Any]) -> dict[str, Any]:
    """JSON has one number type: accept integers where a float is expected (strict mode would not)."""
    for key in _FLOATS:
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


def _compaction_trigger(req: CreateResponse) -> None:
    """A ``compaction_trigger`` item asks to compact the context; it must be the last input item.
    It is validated and taken out of the input, and the request is marked: compaction itself is
    not performed yet (the turn runs on the whole context)."""
    if not isinstance(req.input, list):
        return
    for i, item in enumerate(req.input):
        if isinstance(item, dict) and item.get("type") == "compaction_trigger":
            if i != len(req.input) - 1:
                raise InvalidRequest("A compaction_trigger item must be the last input item.",
                                     param=f"input[{i}]", code="invalid_value")
            refuse_unknown_keys(item, P.CompactionTrigger, f"input[{i}]")
            try:
                _COMPACTION_TRIGGER.validate_python(item, strict=True)
            except ValidationError as exc:
                raise from_validation_error(exc, f"input[{i}]") from exc
            if item.get("id") is not None:
                check_id(item["id"], f"input[{i}].id")
            req.input = req.input[:-1]
            req.compaction_requested = True


CLIENT_METADATA_MAX_VALUE = 16384


def validate_create(body: Any, tools: ToolKinds = BUILTIN) -> CreateResponse:
    """A create request checked whole; ``tools``: the tool kinds served."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    # A null is a parameter not given (as OpenAI and the Open Responses schema treat it).
    data = {key: value for key, value in body.items() if value is not None}
    if "compaction_requested" in data:
        raise InvalidRequest("Unknown parameter: 'compaction_requested'.", param="compaction_requested",
                             code="unknown_parameter")
    refuse_unknown_keys({k: v for k, v in data.items() if k != "input"}, _BODY)
    try:
        req = CreateResponse.model_validate(_float_ok(data))
    except ValidationError as exc:
        raise from_validation_error(exc) from exc
    check_parameters(req)
    validate_metadata(req.metadata)
    # Codex 0.171's x-codex-turn-metadata is ~800 characters (JSON of the turn's ids and workspace):
    # OpenAI takes it, so client_metadata values may be longer than metadata's 512.
    validate_metadata(req.client_metadata, "client_metadata", CLIENT_METADATA_MAX_VALUE)
    validate_text_format(req.text)
    _compaction_trigger(req)
    if isinstance(req.input, list):
        req.input = [validate_item(item, f"input[{i}]", tools.item_types) for i, item in enumerate(req.input)]
    req.tools = validate_tools(req.tools, tools)
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
