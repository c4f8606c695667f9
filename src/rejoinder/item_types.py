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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


@dataclass(frozen=True)
class ItemType:
    """One item type: its ``type``, the prefix of the ids the server gives it, how it replays."""

    type: str
    id_prefix: str
    replay: Replay = no_replay
