"""Unknown keys, at any depth of a request, refused: the SDK's TypedDicts say which keys exist.

OpenAI answers a key it does not know with a 400 naming its dotted path (``reasoning.bogus``,
``tools[0].parameterz``); so does Rejoinder, rather than dropping it silently. The known keys are
those of the ``openai`` SDK's param types, walked along the value (a union is matched by its
``type`` literal, else by the member that knows the most keys), plus the few keys real clients
send beyond the SDK's types, all listed in :data:`CLIENT_EXTRAS`. Only keys are checked here; the
values are checked by each parameter's own validation.
"""

from __future__ import annotations

import collections.abc
import functools
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

import typing_extensions
from openai.types.responses import (
    EasyInputMessageParam,
    WebSearchToolParam,
    response_create_params,
    response_input_item_param,
)

from rejoinder.errors import InvalidRequest

# Keys real clients send that the SDK's types lack, by the type that gets them. One place.
CLIENT_EXTRAS: dict[type, frozenset[str]] = {
    # Codex sends client_metadata (thread, session and turn ids, strings) on every request; the
    # Open Responses schema has presence_penalty and frequency_penalty.
    response_create_params.ResponseCreateParamsNonStreaming: frozenset({"client_metadata", "presence_penalty",
                                                                        "frequency_penalty"}),
    WebSearchToolParam: frozenset({"search_content_types"}),  # Codex and the Agents SDK (image search)
    # An input message with the id it was given (Codex's developer messages, items listed back from
    # a conversation); the SDK's input message types have no id, its output message type has one.
    EasyInputMessageParam: frozenset({"id", "status"}),
    response_input_item_param.Message: frozenset({"id"}),
}


@functools.cache
def _fields(td: type) -> dict[str, Any]:
    return typing.get_type_hints(td)


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and typing_extensions.is_typeddict(tp)


def _members(tp: Any) -> tuple[Any, ...]:
    return get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)


def _is_sequence(tp: Any) -> bool:
    origin = get_origin(tp)
    return origin is not None and isinstance(origin, type) and origin not in (dict, str) \
        and issubclass(origin, collections.abc.Iterable) and not issubclass(origin, collections.abc.Mapping)


def _discriminated(td: type, kind: Any) -> bool | None:
    """Whether ``td``'s ``type`` literal names ``kind``; None when it declares no ``type`` literal."""
    declared = _fields(td).get("type")
    if declared is None or get_origin(declared) is not Literal:
        return None
    return kind in get_args(declared)


def unknown_key(value: Any, tp: Any, path: str) -> str | None:
    """The dotted path of the first key in ``value`` that ``tp`` does not define, or None."""
    if isinstance(value, dict):
        return _unknown_in_object(value, tp, path)
    if isinstance(value, list):
        for member in _members(tp):
            if _is_sequence(member):
                (item_tp,) = get_args(member)[:1] or (Any,)
                for i, item in enumerate(value):
                    found = unknown_key(item, item_tp, f"{path}[{i}]")
                    if found:
                        return found
                return None
    return None


def _unknown_in_object(value: dict[str, Any], tp: Any, path: str) -> str | None:
    members = _members(tp)
    candidates = [m for m in members if _is_typeddict(m)]
    for m in members:
        if m is object or m is Any or get_origin(m) in (dict, collections.abc.Mapping) or m is dict:
            args = get_args(m)
            if len(args) == 2 and args[1] is not object:  # a mapping of typed values: check each
                for key, item in value.items():
                    found = unknown_key(item, args[1], f"{path}.{key}")
                    if found:
                        return found
            return None
    if not candidates:
        return None
    kind = value.get("type")
    pool = candidates
    if isinstance(kind, str):  # the members whose ``type`` names it, else those that declare no type
        pool = ([m for m in candidates if _discriminated(m, kind)]
                or [m for m in candidates if _discriminated(m, kind) is None] or candidates)
    best: tuple[int, str] | None = None
    for td in pool:
        found = _check_typeddict(value, td, path)
        if found is None:
            return None
        misses = sum(1 for key in value if key not in _known(td))
        if best is None or misses < best[0]:
            best = (misses, found)
    assert best is not None
    return best[1]


def _known(td: type) -> frozenset[str] | set[str]:
    extra = CLIENT_EXTRAS.get(td)
    fields = _fields(td).keys()
    return fields | extra if extra else set(fields)


def _check_typeddict(value: dict[str, Any], td: type, path: str) -> str | None:
    fields = _fields(td)
    known = _known(td)
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        if key not in known:
            return where
        if key in fields and isinstance(item, dict | list):
            found = unknown_key(item, fields[key], where)
            if found:
                return found
    return None


def refuse_unknown_keys(value: Any, tp: Any, path: str = "") -> None:
    found = unknown_key(value, tp, path)
    if found:
        raise InvalidRequest(f"Unknown parameter: '{found}'.", param=found, code="unknown_parameter")
