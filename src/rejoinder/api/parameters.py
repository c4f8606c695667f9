"""Every parameter of ``POST /v1/responses``: honoured, accepted as a hint, or refused, and why.

The table below covers every field of the ``openai`` SDK's ``ResponseCreateParams`` and the few
that real clients send beyond it (``known_keys.CLIENT_EXTRAS``); a test keeps it complete. A
parameter is *honoured* when it changes what the server does as OpenAI documents it, a *hint* when
OpenAI itself treats it as a preference that a server may meet without visible effect (it is
validated, and echoed where the Response has a field for it), and *refused* with a 400 whose code
says why (``unsupported_parameter``: the feature does not exist here; ``unsupported_value``: this
value of it does not) when honouring it is not possible. Nothing is dropped silently.
"""

from __future__ import annotations

import typing
from typing import Any

from openai.types.responses import response_create_params as R
from openai.types.responses.response_includable import ResponseIncludable
from openai.types.shared_params import Reasoning
from pydantic import TypeAdapter, ValidationError

from rejoinder.api.errors import from_validation_error
from rejoinder.errors import InvalidRequest

HONOURED = frozenset({
    "model", "input", "instructions", "previous_response_id", "conversation", "store", "stream", "background",
    "temperature", "top_p", "presence_penalty", "frequency_penalty", "max_output_tokens", "max_tool_calls",
    "text", "tools", "tool_choice", "parallel_tool_calls", "metadata", "include", "top_logprobs",
    "truncation", "reasoning", "prompt_cache_key", "prompt_cache_retention", "stream_options",
    "client_metadata", "user", "safety_identifier",
})
HINTS = frozenset({
    "service_tier",  # auto and default: what every request here gets
    "prompt_cache_options",  # mode, ttl, comparison_response_id; prewarm is refused
    "background_options",  # every completion window is met by running as soon as possible
    "image",  # context_compression auto or disabled; enabled is refused
    "access_programs",  # the standard program; the Daybreak programs are refused
    "context_management",  # validated here, performed by engine/compaction.py
})
REFUSED = frozenset({
    "prompt",  # no stored prompts
    "moderation",  # no moderation model
})
SUPPORTED_SERVICE_TIERS = ("auto", "default")
INCLUDABLE = tuple(typing.get_args(ResponseIncludable))

_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "reasoning": TypeAdapter(Reasoning),
    "stream_options": TypeAdapter(R.StreamOptions),
    "context_management": TypeAdapter(list[R.ContextManagement]),
    "background_options": TypeAdapter(R.BackgroundOptions),
    "prompt_cache_options": TypeAdapter(R.PromptCacheOptions),
    "image": TypeAdapter(R.Image),
    "access_programs": TypeAdapter(R.AccessPrograms),
    "moderation": TypeAdapter(R.Moderation),
}


def _unsupported(param: str, message: str, code: str = "unsupported_value") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def _typed(name: str, value: Any) -> None:
    """A nested object against the SDK's own type (key names are checked by ``known_keys``)."""
    if value is None:
        return
    try:
        _ADAPTERS[name].validate_python(value, strict=True)
    except ValidationError as exc:
        raise from_validation_error(exc, name) from exc


def check_parameters(req: Any) -> None:
    """Refuse what cannot be honoured; check the values of hints. ``req`` is a ``CreateResponse``."""
    for name in _ADAPTERS:
        _typed(name, getattr(req, name))
    if req.prompt is not None:
        raise _unsupported("prompt", "Stored prompts are not supported by this server: send the prompt's text as "
                           "instructions and input.", "unsupported_parameter")
    if req.moderation is not None:
        raise _unsupported("moderation", "Moderation is not supported by this server.", "unsupported_parameter")
    if req.service_tier not in (None, *SUPPORTED_SERVICE_TIERS):
        raise _unsupported("service_tier", f"service_tier '{req.service_tier}' is not supported by this server. "
                           "Supported values are: 'auto' and 'default'.")
    _check_include(req.include)
    _check_reasoning(req.reasoning or {})
    _check_hints(req)
    if req.stream_options is not None and not req.stream:
        raise InvalidRequest("stream_options can only be set when stream is true.", param="stream_options",
                             code="invalid_value")


def _check_include(values: list[Any] | None) -> None:
    for i, value in enumerate(values or []):
        if value not in INCLUDABLE:
            raise InvalidRequest(
                f"Invalid value: '{value}'. Supported values are: {', '.join(repr(v) for v in INCLUDABLE)}.",
                param=f"include[{i}]", code="invalid_value",
            )


def _check_reasoning(reasoning: dict[str, Any]) -> None:
    """``effort`` is passed to the backend; ``summary`` adds summary parts to reasoning items;
    ``context`` picks which reasoning items go back to the backend (engine/reasoning.py; its
    values are the SDK's, checked by its type). ``mode`` describes OpenAI's own reasoning models:
    only the value that means "what the backend does anyway" is accepted."""
    if reasoning.get("mode") not in (None, "standard"):
        raise _unsupported("reasoning.mode", f"reasoning.mode '{reasoning['mode']}' is not supported by this "
                           "server. Supported values are: 'standard'.")


def _check_hints(req: Any) -> None:
    for i, entry in enumerate(req.context_management or []):
        if entry.get("type") != "compaction":
            raise InvalidRequest(f"Invalid value: '{entry.get('type')}'. Supported values are: 'compaction'.",
                                 param=f"context_management[{i}].type", code="invalid_value")
        threshold = entry.get("compact_threshold")
        if threshold is not None and threshold < 1:
            raise InvalidRequest(
                f"Invalid 'context_management[{i}].compact_threshold': value below minimum value. Expected a "
                f"value >= 1, but got {threshold} instead.",
                param=f"context_management[{i}].compact_threshold", code="invalid_value")
    window = (req.background_options or {}).get("completion_window")
    if window in ("2h", "8h") and (not req.background or req.stream):
        raise InvalidRequest(f"background_options.completion_window '{window}' requires background: true and "
                             "stream: false.", param="background_options.completion_window", code="invalid_value")
    if (req.prompt_cache_options or {}).get("prewarm"):
        raise _unsupported("prompt_cache_options.prewarm", "prompt_cache_options.prewarm is not supported by this "
                           "server: every request here generates output.")
    if (req.image or {}).get("context_compression") == "enabled":
        raise _unsupported("image.context_compression", "image.context_compression 'enabled' is not supported by "
                           "this server: images are sent to the model as given. Supported values are: 'auto' and "
                           "'disabled'.")
    cyber = (req.access_programs or {}).get("cyber")
    if cyber not in (None, "standard"):
        raise _unsupported("access_programs.cyber", f"access_programs.cyber '{cyber}' is not supported by this "
                           "server. Supported values are: 'standard'.")
