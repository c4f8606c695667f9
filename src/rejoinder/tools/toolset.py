"""The tools of one request: what the model is offered, and which tool a call belongs to.

Built from the request's ``tools`` by the server's ``ToolKinds``: one ``ToolGroup`` per kind (every
registered kind has one, empty when the request declares none, so a ``tool_choice`` naming it gets
that kind's own 400). A name the model invents belongs to the fallback kind (a client-side function
call), never an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rejoinder.engine.events import Event
from rejoinder.errors import InvalidRequest
from rejoinder.item_types import ItemType
from rejoinder.tools.interface import CallEnv, ModelCall, Names, Offer, Preparation, TextFilter, ToolGroup, ToolSetup

if TYPE_CHECKING:
    from rejoinder.tools.registry import ToolKinds


def _choice_error(message: str, param: str = "tool_choice") -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_value")


class Toolset:
    def __init__(self, kinds: ToolKinds, groups: list[ToolGroup]):
        self.kinds = kinds
        self.groups = groups
        self.fallback = next(g for g in groups if g.kind.type == kinds.fallback)
        self.offered: dict[str, Offer] = {}
        self._refresh()

    @classmethod
    def from_request(cls, tools: list[dict[str, Any]], kinds: ToolKinds, setup: ToolSetup) -> Toolset:
        declared: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for i, tool in enumerate(tools):
            declared.setdefault(tool["type"], []).append((f"tools[{i}]", tool))
        names = Names()
        return cls(kinds, [kind.group(declared.get(kind.type, []), names, setup) for kind in kinds])

    def _refresh(self) -> None:
        self.offered = {offer.name: offer for group in self.groups for offer in group.offers()}

    @property
    def item_types(self) -> dict[str, ItemType]:
        return self.kinds.item_types

    # -- before the first event --------------------------------------------------------------

    def read_input(self, prep: Preparation) -> None:
        for group in self.groups:
            group.read_input(prep)

    async def prepare(self, prep: Preparation) -> None:
        """Each group's work before the first event; ``prep.kept``: a queued job's ``kept()``."""
        kept = prep.kept or {}
        for group in self.groups:
            prep.kept = kept.get(group.kind.type)
            await group.prepare(prep)
        self._refresh()

    def kept(self) -> dict[str, Any] | None:
        kept = {group.kind.type: group.kept() for group in self.groups}
        return {k: v for k, v in kept.items() if v is not None} or None

    # -- what the model is offered -----------------------------------------------------------

    def offer(self, name: str) -> Offer:
        """The tool a call to ``name`` belongs to: an offered one, or the fallback kind's."""
        offer = self.offered.get(name) or self.fallback.invented(name)
        assert offer is not None, "the fallback kind makes an offer for any name"
        return offer

    def client_names(self) -> set[str]:
        """The offered tools the client executes (still offered once ``max_tool_calls`` is reached)."""
        return {name for group in self.groups if not group.kind.on_server for name in
                (o.name for o in group.offers())}

    def chat_tools(self, only: set[str] | None = None) -> list[dict[str, Any]]:
        return [offer.chat_tool() for name, offer in self.offered.items() if only is None or name in only]

    def aliases(self) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        for group in self.groups:
            out.update(group.aliases())
        return out

    def text_filter(self) -> TextFilter | None:
        """The filter of a new ``output_text`` part: the first group's that has one."""
        return next((f for f in (g.text_filter() for g in self.groups) if f is not None), None)

    def _chooser(self, type_: Any) -> ToolGroup | None:
        return next((g for g in self.groups if type_ in g.kind.choice_types), None)

    def _choice_types(self) -> list[str]:
        return [t for g in self.groups for t in g.kind.choice_types]

    def resolve_choice(self, choice: Any) -> tuple[Any, set[str] | None]:
        """The upstream ``tool_choice`` (None: leave it out) and the subset of tools to offer (None: all).

        ``auto``/``none``/``required`` pass through; a choice naming one tool forces it; a choice
        naming several (an MCP server) or ``allowed_tools`` narrows the offered tools, with
        ``required`` when the mode asks for it. Each kind resolves the choices that name its type.
        """
        if choice is None or choice == "auto":
            return None, None
        if choice in ("none", "required"):
            return choice, None
        if not isinstance(choice, dict):
            raise _choice_error(f"Invalid value: '{choice}'. Supported values are: 'none', 'auto' and 'required'.")
        kind = choice.get("type")
        if kind == "allowed_tools":
            return self._allowed(choice)
        group = self._chooser(kind)
        if group is None:
            supported = ", ".join([*self._choice_types(), "allowed_tools"])
            raise _choice_error(f"Unsupported tool_choice type '{kind}'. Supported: {supported}.", "tool_choice.type")
        names = group.choose(choice, "tool_choice", allowed=False)
        if len(names) == 1:
            return self.offer(next(iter(names))).forced_choice(), None
        return "required", names

    def _allowed(self, choice: dict[str, Any]) -> tuple[Any, set[str]]:
        mode = choice.get("mode", "auto")
        if mode not in ("auto", "required"):
            raise _choice_error(f"Invalid value: '{mode}'. Supported values are: 'auto' and 'required'.",
                                "tool_choice.mode")
        tools = choice.get("tools")
        if not isinstance(tools, list):
            raise InvalidRequest("Missing required parameter: 'tool_choice.tools'.", param="tool_choice.tools",
                                 code="missing_required_parameter")
        allowed: set[str] = set()
        for j, t in enumerate(tools):
            t_kind = t.get("type") if isinstance(t, dict) else None
            group = self._chooser(t_kind)
            if group is None:
                raise _choice_error(f"Allowed tool type '{t_kind}' is not supported. "
                                    f"Supported: {', '.join(self._choice_types())}.", f"tool_choice.tools[{j}].type")
            allowed |= group.choose(t, f"tool_choice.tools[{j}]", allowed=True)
        return ("required" if mode == "required" else None), allowed

    # -- the run -----------------------------------------------------------------------------

    def head(self, env: CallEnv) -> list[Event]:
        return [event for group in self.groups for event in group.head(env)]

    @property
    def resumes(self) -> bool:
        return any(group.resumes for group in self.groups)

    def resumed(self, env: CallEnv) -> tuple[list[Event], list[ModelCall]]:
        events: list[Event] = []
        calls: list[ModelCall] = []
        for group in self.groups:
            more_events, more_calls = group.resumed(env)
            events += more_events
            calls += more_calls
        return events, calls

    def close_soon(self) -> None:
        for group in self.groups:
            group.close_soon()

    async def aclose(self) -> None:
        for group in self.groups:
            await group.aclose()

    def __iter__(self) -> Iterator[ToolGroup]:
        return iter(self.groups)
