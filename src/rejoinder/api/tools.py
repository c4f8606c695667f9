"""The ``tools`` of a request: every tool type the SDK defines is checked against its own type;
the ones this server serves (its ``ToolKinds``) are accepted, the others refused with a 400 naming
the type.

A type is served when a kind of the server's ``ToolKinds`` (tools/registry.py) serves it (run here,
or handed to the client; ``web_search`` without a provider is accepted and not offered); every other
type, a type a newer SDK adds included, is "not available on this server".

A tool echoed in the Response carries every key its type has: a function tool sent without
``strict`` (or ``description``, or ``parameters``) is echoed with it as null, as OpenAI does and
as the Open Responses schema requires (each kind's ``echo``).
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any

from openai.types.responses.tool_param import ToolParam
from pydantic import TypeAdapter, ValidationError

from rejoinder.api.errors import from_validation_error
from rejoinder.errors import InvalidRequest

if TYPE_CHECKING:
    from rejoinder.tools.registry import ToolKinds

# Each tool type the SDK defines, by its ``type`` value.
_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    kind: TypeAdapter(member)
    for member in typing.get_args(ToolParam)
    for kind in typing.get_args(typing.get_type_hints(member)["type"])
}


def _not_available(kind: str, param: str) -> InvalidRequest:
    return InvalidRequest(f"Tool type '{kind}' is not available on this server.", param=param,
                          code="unsupported_value")


def validate_tools(tools: list[Any], kinds: ToolKinds) -> list[dict[str, Any]]:
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
        assert isinstance(kind, str)
        served = kinds.get(kind)
        try:
            adapter.validate_python(served.as_given(tool) if served is not None else tool)
        except ValidationError as exc:
            raise from_validation_error(exc, f"tools[{i}]") from exc
        if served is not None:
            echoed.append(served.echo(tool))
            continue
        raise _not_available(kind, f"tools[{i}].type")
    return echoed
