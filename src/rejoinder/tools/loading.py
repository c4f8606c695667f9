"""Which tools a step may offer: the request's, less the deferred ones, plus those loaded on the way.

A tool declared with ``defer_loading: true`` (a function, a custom tool, or a tool of a namespace)
is not offered until a ``tool_search_output`` in the context names it. Tools a
``tool_search_output`` or an ``additional_tools`` item carries are offered from that point of the
conversation on, whether the request declared them or not. Loaded tools must be of a type this
server serves, or the request is refused naming the item that carries them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rejoinder.errors import InvalidRequest

_LOADERS = ("tool_search_output", "additional_tools")


def _key(tool: dict[str, Any]) -> tuple[str, str]:
    return str(tool.get("type")), str(tool.get("name") or "")


def _deferred(tool: dict[str, Any]) -> bool:
    """Functions and custom tools defer here; another kind keeps the flag for its own answer (MCP: a 400)."""
    return bool(tool.get("defer_loading")) and tool.get("type") in ("function", "custom")


def _loaded(items: Iterable[dict[str, Any]], served: Iterable[str]) -> list[dict[str, Any]]:
    """Every tool a loader item of the context carries, oldest first."""
    kinds = set(served)
    out = []
    for item in items:
        if item.get("type") not in _LOADERS:
            continue
        for j, tool in enumerate(item.get("tools") or []):
            if tool.get("type") not in kinds:
                raise InvalidRequest(
                    f"Tool type '{tool.get('type')}' in a {item['type']} item is not available on this server.",
                    param=f"input.{item['type']}.tools[{j}].type", code="unsupported_value")
            out.append(tool)
    return out


def _merge_namespace(into: dict[str, Any], more: dict[str, Any]) -> None:
    names = {t.get("name") for t in into["tools"]}
    into["tools"] += [t for t in more.get("tools") or [] if t.get("name") not in names]


def offered_declarations(declared: list[dict[str, Any]], items: Iterable[dict[str, Any]],
                         served: Iterable[str]) -> list[dict[str, Any]]:
    """The declarations the request's tools are built from: declared and not deferred, then loaded.

    A loaded tool that the request declared deferred is the request's declaration (the client
    may return a shortened form); a namespace loaded in parts gathers them under one declaration.
    """
    declared_by_key = {_key(t): t for t in declared}
    out: list[dict[str, Any]] = []
    namespaces: dict[str, dict[str, Any]] = {}
    present: set[tuple[str, str]] = set()

    def add(tool: dict[str, Any]) -> None:
        if tool.get("type") == "namespace":
            name = str(tool["name"])
            if name in namespaces:
                _merge_namespace(namespaces[name], tool)
            else:
                namespaces[name] = {**tool, "tools": list(tool.get("tools") or [])}
                out.append(namespaces[name])
            return
        if _key(tool) not in present:
            present.add(_key(tool))
            out.append(tool)

    for tool in declared:  # as declared: a duplicate is the kind's 400, not merged away
        if tool.get("type") == "namespace":
            tool = {**tool, "tools": [t for t in tool.get("tools") or [] if not _deferred(t)]}
            namespaces.setdefault(str(tool["name"]), tool)
            out.append(tool)
        elif not _deferred(tool):
            present.add(_key(tool))
            out.append(tool)
    for tool in _loaded(items, served):  # loaded: joins what is there, once
        if tool.get("type") == "namespace":
            declared_ns = declared_by_key.get(_key(tool))
            if declared_ns is not None:  # the declared forms of the tools it names
                forms = {t.get("name"): t for t in declared_ns.get("tools") or []}
                tool = {**declared_ns, "tools": [forms.get(t.get("name"), t) for t in tool.get("tools") or []]}
            add(tool)
        else:
            add(declared_by_key.get(_key(tool), tool))
    return [t for t in out if t.get("type") != "namespace" or t["tools"]]
