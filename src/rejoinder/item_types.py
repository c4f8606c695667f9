"""What an item type is, once: its id prefix and how it reads back to the model.

Every item a response makes or a client sends has a type (``message``, ``function_call``,
``mcp_call``...). The core types are the engine's (engine/context.py); each tool kind brings the
types its calls make (tools/interface.py ``ToolKind.item_types``), and the server's ``ToolKinds``
(tools/registry.py) holds the table of all of them.

``replay`` is an item's place in the chat transcript a backend reads (engine/context.py builds it):
a chat message, a tool call (with its result when the server has it, else awaiting the client's
output), the client's output for a call, or nothing (a listing, a reasoning item).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rejoinder.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class ReplayMessage:
    """A chat message as it is."""

    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReplayCall:
    """A tool call of the assistant. ``result``: its tool message when the server ran it (or it was
    denied); None when the client answers it with an output item."""

    call_id: str
    name: str
    arguments: str
    result: str | None = None


@dataclass(frozen=True, slots=True)
class ReplayOutput:
    """The client's output for the call ``call_id``: the tool message's text."""

    call_id: str
    text: str


Replayed = ReplayMessage | ReplayCall | ReplayOutput | None


@dataclass
class ReplayScope:
    """What replaying one transcript knows beyond the item: the model-facing names of namespaced
    tools (``ToolGroup.aliases``) and notes earlier items left (an approval request, by id)."""

    aliases: dict[tuple[str, str], str] = field(default_factory=dict)
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def name(self, namespace: str, name: str) -> str:
        return self.aliases.get((namespace, name), name)


def orphan_output(call_id: str) -> InvalidRequest:
    """An output item whose call the context does not hold (OpenAI's words and code)."""
    return InvalidRequest(f"No tool call found for function call output with call_id {call_id}.",
                          param="input", code="invalid_function_call_output")


def missing_output(call_id: str) -> InvalidRequest:
    """A call the client had to answer, left without its output."""
    return InvalidRequest(f"No tool output found for function call {call_id}.", param="input",
                          code="missing_function_call_output")


Replay = Callable[[dict[str, Any], ReplayScope], Replayed]


def no_replay(item: dict[str, Any], scope: ReplayScope) -> Replayed:
    """An item the model does not read back (a tool listing, a reasoning item, a reference)."""
    return None


InputUse = Literal["served", "not_available"]


@dataclass(frozen=True)
class ItemType:
    """One row of the item table: an item type's ``type``, the prefix of the ids the server gives
    it, how it replays, and how a client's item of this type is checked and completed.

    ``param``: the SDK's param type it is checked against (None: checked by hand, a message).
    ``required``: fields the SDK leaves optional without which the item cannot be paired or
    replayed. ``defaults``: fields filled in when the client leaves them out (a ``status``).
    ``input``: as a response's input, served or refused as not available on this server (a
    conversation still stores such an item as given). ``in_conversations``: a conversation may
    hold it (``item_reference`` is input only).
    """

    type: str
    id_prefix: str = ""  # "": the tool kind serving the type gives it (its row in tools/)
    replay: Replay = no_replay
    param: Any = None
    required: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    input: InputUse = "served"
    in_conversations: bool = True


def merge_rows(base: ItemType | None, row: ItemType) -> ItemType:
    """A tool kind's row over the core row of the same type: the kind's prefix and replay, the
    core's checks and defaults where the kind gives none; served (the kind runs it)."""
    if base is None:
        return row
    return replace(base, id_prefix=row.id_prefix or base.id_prefix,
                   replay=row.replay if row.replay is not no_replay else base.replay,
                   param=row.param if row.param is not None else base.param,
                   required=row.required or base.required, defaults=row.defaults or base.defaults,
                   input="served")
