"""The ``tools`` of a request: every tool type the SDK defines is checked against its own type;
the ones this server serves (its ``ToolKinds``) are accepted, the others refused with a 400 naming
the type.

Each type is in exactly one row of the table below: served (run here, or handed to the client),
accepted but not offered to the model (``web_search`` without a search provider: Codex declares
it on every request), or not available on this server. A type a newer SDK adds is refused as not
available until it gets a row.

A tool echoed in the Response carries every key its type has: a function tool sent without
``strict`` (or ``description``, or ``parameters``) is echoed with it as null, as OpenAI does and
as the Open Responses schema requires (each kind's ``echo``).
"""

from __future__ import annotations

import logging
import typing
from typing import TYPE_CHECKING, Any

from openai.types.responses.tool_param import ToolParam
from pydantic import TypeAdapter, ValidationError

from rejoinder.api.errors import from_validation_error
from rejoinder.errors import InvalidRequest
from rejoinder.tools.grammar import GrammarError, compile_grammar

# Served: the kinds of the server's ToolKinds (tools/registry.py). Declared by Codex on every
# request; until a search provider serves them they change nothing:
# (web_search is served by tools/web_search.py: accepted, and offered only with a provider.)
NOT_OFFERED: tuple[str, ...] = ()
# Client-executed kinds whose declarations are checked; served once their modules land.
CHECKED_NOT_SERVED = ("custom", "namespace", "tool_search", "apply_patch", "shell", "local_shell")

if TYPE_CHECKING:
    from rejoinder.tools.registry import ToolKinds

# Each tool type the SDK defines, by its ``type`` value.
_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    kind: TypeAdapter(member)
    for member in typing.get_args(ToolParam)
    for kind in typing.get_args(typing.get_type_hints(member)["type"])
}


log = logging.getLogger(__name__)
_told_not_offered = False


def _not_offered(kind: str) -> None:
    """Said once per process: the operator learns why the model never searches."""
    global _told_not_offered
    if not _told_not_offered:
        _told_not_offered = True
        log.info("a request declares '%s': no search provider is configured, so the tool is accepted and not "
                 "offered to the model (docs/tools.md)", kind)


def _not_available(kind: str, param: str) -> InvalidRequest:
    return InvalidRequest(f"Tool type '{kind}' is not available on this server.", param=param,
                          code="unsupported_value")


def check_custom(tool: dict[str, Any], param: str) -> None:
    """A grammar must compile: a malformed one is the request's error, not every call's."""
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar":
        try:
            compile_grammar(fmt["syntax"], fmt["definition"])
        except GrammarError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "malformed grammar"
            raise InvalidRequest(f"Invalid '{param}.format.definition': the {fmt['syntax']} grammar does not "
                                 f"compile: {first}", param=f"{param}.format.definition",
                                 code="invalid_value") from exc


def _check_declaration(kind: str, tool: dict[str, Any], param: str) -> None:
    if kind == "custom":
        check_custom(tool, param)
    elif kind == "namespace":
        for j, inner in enumerate(tool.get("tools") or []):
            if inner.get("type") == "custom":
                check_custom(inner, f"{param}.tools[{j}]")


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
        if kind in CHECKED_NOT_SERVED:
            _check_declaration(kind, tool, f"tools[{i}]")
            raise InvalidRequest(
                f"Tool type '{kind}' is not supported by this server yet. Supported: {', '.join(kinds.types)}.",
                param=f"tools[{i}].type", code="unsupported_value")
        if kind not in NOT_OFFERED:
            raise _not_available(kind, f"tools[{i}].type")
        _not_offered(kind)
        echoed.append(tool)
    return echoed
