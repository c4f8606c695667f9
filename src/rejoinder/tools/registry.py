"""The tool kinds a server serves, and the table of every item type they and the engine make.

``BUILTIN`` is what ``create_app`` serves by default. A new tool kind is one module (a ``ToolKind``,
tools/interface.py) and one line: added to ``BUILTIN`` below, or given to one app with
``create_app(settings, tools=BUILTIN.with_kinds(MyKind()))``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rejoinder import ids
from rejoinder.api.item_table import CORE_ITEM_TYPES
from rejoinder.item_types import ItemType, merge_rows
from rejoinder.tools.builtins import ApplyPatchKind, LocalShellKind, ShellKind
from rejoinder.tools.custom import CustomKind
from rejoinder.tools.file_search import FileSearchKind
from rejoinder.tools.function import FunctionKind
from rejoinder.tools.interface import ToolKind
from rejoinder.tools.mcp import McpKind
from rejoinder.tools.namespace import NamespaceKind
from rejoinder.tools.tool_search import ToolSearchKind
from rejoinder.tools.web_search import kinds as web_search_kinds


class ToolKinds:
    """Tool kinds by ``type``, in the order their groups are made (client kinds claim their
    model-facing names first), and ``fallback``: the kind a call to an unknown name belongs to."""

    def __init__(self, kinds: Iterable[ToolKind], fallback: str = "function",
                 services: Mapping[str, Any] | None = None):
        self.services: Mapping[str, Any] = services or {}  # the app's services its kinds may use
        self.kinds: dict[str, ToolKind] = {}
        for kind in sorted(kinds, key=lambda k: k.on_server):  # stable: client kinds first
            self.kinds[kind.type] = kind
        if fallback not in self.kinds:
            raise ValueError(f"the fallback tool kind {fallback!r} is not registered")
        self.fallback = fallback
        # The one table of item types: the core rows, each kind's rows over them (item_types.py).
        self.item_types: dict[str, ItemType] = {t.type: t for t in CORE_ITEM_TYPES}
        for kind in self.kinds.values():
            for row in kind.item_types:
                self.item_types[row.type] = merge_rows(self.item_types.get(row.type), row)
        for row in self.item_types.values():
            if row.id_prefix:
                ids.PREFIX_BY_ITEM_TYPE.setdefault(row.type, row.id_prefix)

    def with_kinds(self, *kinds: ToolKind) -> ToolKinds:
        """These kinds too (a kind of a type already served replaces it)."""
        merged = {**self.kinds, **{k.type: k for k in kinds}}
        return ToolKinds(merged.values(), self.fallback, self.services)

    def bound(self, **services: Any) -> ToolKinds:
        """The same kinds, given the app's services (``ToolSetup.services``): done once at start-up."""
        return ToolKinds(self.kinds.values(), self.fallback, {**self.services, **services})

    def get(self, type_: str) -> ToolKind | None:
        return self.kinds.get(type_)

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(self.kinds)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.kinds.values())


# The web search kinds get the provider from build_services (http/app.py); without one they accept
# a declared web_search and do not offer it.
BUILTIN = ToolKinds([FunctionKind(), CustomKind(), NamespaceKind(), ToolSearchKind(), ShellKind(), LocalShellKind(),
                     ApplyPatchKind(), McpKind(), FileSearchKind(), *web_search_kinds()])
