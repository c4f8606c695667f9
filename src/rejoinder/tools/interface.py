"""What a tool kind is: the whole contract between the engine and one ``tools[].type``.

The engine never names a tool type. It asks the request's ``Toolset`` (tools/toolset.py) which
tools the model is offered and, when the model calls one, hands the call to that tool's ``Offer``;
everything particular to a type (its declaration, its items and events, how it runs, how its items
read back to the model) lives in one module under tools/ behind the classes below.

- ``ToolKind``: one tool type (``function``, ``mcp``...), registered once in a ``ToolKinds``
  (tools/registry.py). It checks and echoes a declaration and makes the request's ``ToolGroup``.
  ``on_server`` says who executes its calls: the server (MCP, searches) or the client (function
  tools and Codex's built-ins, whose call ends the turn).
- ``ToolGroup``: every declaration of that kind in one request. It prepares them (async work before
  the first event, every 4xx raised there), says what the model is offered (``Offer`` objects, one
  per model-facing name), resolves a ``tool_choice`` that names its type, and may put items at the
  head of the response or resume calls before the model is asked (an approved MCP call).
- ``Offer``: one model-facing tool. ``begin`` turns the model's call into an item and its events,
  returning the ``ModelCall`` that follows the call's arguments as they stream.
- ``ModelCall``: one call the model made. A server call runs (``run``: an async iterator of event
  batches, made through the response's ``ResponseState``); a client call's item ends the turn and the
  client answers it with an ``*_output`` item.
- Items read back to the model through the kind's ``ItemType`` entries (item_types.py), whose
  ``replay`` gives each item's place in the chat transcript.
"""

from __future__ import annotations

import hashlib
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from rejoinder.engine.events import Event, ResponseState
from rejoinder.errors import InvalidRequest
from rejoinder.item_types import ItemType
from rejoinder.tenant import Tenant

RequestLog = logging.Logger | logging.LoggerAdapter  # type: ignore[type-arg]

if TYPE_CHECKING:
    from rejoinder.config import Settings
    from rejoinder.observability.hooks import RunObserver


@dataclass
class ToolSetup:
    """What a kind may use to make one request's group: the server's settings, the request's tenant
    (every object a tool reads is scoped to it: another principal's vector store is a 404), the
    app's services by name (``ToolKinds.bound``: ``vectors``, ``files``) and ``shared``, one dict per
    request that the groups of several kinds may share (the citation numbers of two search tools)."""

    settings: Settings
    tenant: Tenant
    services: Mapping[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)


class TextFilter(Protocol):
    """Rewrites one ``output_text`` part as it streams (``ToolGroup.text_filter``): the text to emit
    now and the annotations it completes (each becomes ``response.output_text.annotation.added``)."""

    def feed(self, delta: str) -> tuple[str, list[dict[str, Any]]]: ...

    def flush(self) -> tuple[str, list[dict[str, Any]]]: ...


@dataclass
class CallEnv:
    """What a tool sees of the running response: its state (to make items and events), its
    telemetry, its id and its log (lines that carry the request's id)."""

    state: ResponseState
    observer: RunObserver
    response_id: str
    log: RequestLog = field(default_factory=lambda: logging.getLogger("rejoinder.tools"))


@dataclass
class Preparation:
    """What a group reads while a response is prepared: the context (earlier items, this turn's
    input) and what a queued job kept from the preparation done when it was accepted."""

    history: list[dict[str, Any]]
    input_items: list[dict[str, Any]]
    kept: Any = None  # this kind's ``ToolGroup.kept()`` from the submission, or None
    known: dict[str, dict[str, Any]] = field(default_factory=dict)  # every item of the context by id

    @property
    def items(self) -> list[dict[str, Any]]:
        return [*self.history, *self.input_items]


MAX_NAME = 64  # what OpenAI-compatible backends accept: [a-zA-Z0-9_-]{1,64}
_ILLEGAL_IN_NAME = re.compile(r"[^a-zA-Z0-9_-]")


def legal_name(name: str) -> str:
    """``name`` with every character a chat backend refuses in a tool name made ``_``."""
    return _ILLEGAL_IN_NAME.sub("_", name)


class Names:
    """The model-facing names of one request's tools: each is claimed once, in declaration order
    (client tools first, then server tools as they are listed)."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def claim(self, name: str) -> str:
        self.taken.add(name)
        return name

    def qualified(self, prefix: str, name: str, clash: str) -> str:
        """A free ``prefix__name`` (an MCP server's label, a namespace), legal for a chat backend;
        a stable hash of both settles a name still too long or taken. ``clash``: the 400's message
        when nothing settles it."""
        plain = legal_name(f"{prefix}__{name}")
        if len(plain) <= MAX_NAME and plain not in self.taken:
            return plain
        digest = hashlib.sha256(f"{prefix}\0{name}".encode()).hexdigest()
        for size in (8, 16, 40):
            short = f"{plain[:MAX_NAME - size - 1]}_{digest[:size]}"
            if short not in self.taken:
                return short
        raise InvalidRequest(clash, param="tools")


class ModelCall:
    """One tool call the model made, from its name on.

    ``index`` is its item's output index (-1 while it has none). ``on_server``: the server runs
    it (``run``); otherwise the client acts next and the turn ends after this step."""

    index: int = -1
    on_server: bool = False

    def delta(self, text: str) -> list[Event]:
        """More of the call's arguments (JSON text, as the model streams it)."""
        return []

    def retry_messages(self) -> list[dict[str, Any]]:
        """Chat messages the model reads on the next step only: a call refused before it reached the
        client, and why (tools/checked_call.py), so the model can make it again."""
        return []

    def retry_choice(self) -> dict[str, Any] | None:
        """The backend ``tool_choice`` of that next step: the refused call's tool, forced."""
        return None

    def done(self) -> list[Event]:
        """The arguments are complete (the model moved on, or the step ended)."""
        return []

    def end_of_step(self) -> list[Event]:
        """The inference step is over: items that wait for the whole step (an approval request)."""
        return []

    def run(self) -> AsyncIterator[list[Event]]:
        """Execute a server call, yielding its events in batches (made through the state, in order):
        ``async def run(self)`` with ``yield [...]``. Calls of one step run concurrently; their
        batches reach the client in output order."""
        raise NotImplementedError(f"{type(self).__name__} is not executed by the server")


class Offer(ABC):
    """One tool the model is offered, under the (unique, legal) name it sees."""

    name: str

    @abstractmethod
    def chat_tool(self) -> dict[str, Any]:
        """The backend's tool definition (chat completions' ``tools[]`` entry), nulls dropped."""

    def forced_choice(self) -> dict[str, Any]:
        """The backend's ``tool_choice`` that forces this tool."""
        return {"type": "function", "function": {"name": self.name}}

    def on_server(self) -> bool:
        """Whether a call to it runs on the server now (counted against ``max_tool_calls``)."""
        return False

    @abstractmethod
    def begin(self, env: CallEnv, call_id: str) -> tuple[ModelCall, list[Event]]:
        """The model named this tool in a call: its item starts (``output_item.added``)."""


class ToolGroup(ABC):
    """Every declaration of one kind in one request."""

    kind: ToolKind

    async def prepare(self, prep: Preparation) -> None:
        """Work before the first event (list a server's tools...). Raises the request's 4xx."""
        return None

    def read_input(self, prep: Preparation) -> None:
        """Check this turn's input items this kind answers for (an approval without its request: 400)."""
        return None

    @abstractmethod
    def offers(self) -> Sequence[Offer]:
        """What the model is offered, in declaration order."""

    def choose(self, choice: dict[str, Any], param: str, allowed: bool) -> set[str]:
        """The offered names a ``tool_choice`` naming this kind selects (``allowed``: it is one entry
        of an ``allowed_tools`` choice, at ``param``). Raises a 400 for a choice naming nothing."""
        raise NotImplementedError

    def invented(self, name: str) -> Offer | None:
        """The fallback kind's offer for a name the model invented (a client-side call)."""
        return None

    def aliases(self) -> dict[tuple[str, str], str]:
        """(namespace, tool name) -> the name the model sees, for items that name tools that way."""
        return {}

    def text_filter(self) -> TextFilter | None:
        """A filter for each ``output_text`` part of the answer (citation markers into annotations);
        the first group that has one filters the text."""
        return None

    def head(self, env: CallEnv) -> list[Event]:
        """Items made while preparing, emitted right after ``response.in_progress``."""
        return []

    def resumed(self, env: CallEnv) -> tuple[list[Event], list[ModelCall]]:
        """Server calls this turn's input released (approvals): started now, run before the model."""
        return [], []

    @property
    def resumes(self) -> bool:
        """Whether ``resumed`` has calls to run."""
        return False

    def kept(self) -> Any:
        """What a queued job keeps of the preparation (JSON), so the replica running it need not
        repeat it; None for nothing."""
        return None

    def close_soon(self) -> None:
        """The response ended: release what the group holds, without delaying its stream."""
        return None

    async def aclose(self) -> None:
        """Release what the group holds now (the response never started)."""
        return None


class ToolKind(ABC):
    """One tool type the server serves."""

    type: ClassVar[str]  # the declaration's ``type``
    on_server: ClassVar[bool] = False  # the server executes its calls
    choice_types: ClassVar[tuple[str, ...]] = ()  # ``tool_choice`` types it resolves (``ToolGroup.choose``)
    item_types: ClassVar[tuple[ItemType, ...]] = ()  # the items its calls make and their answers

    def echo(self, declaration: dict[str, Any]) -> dict[str, Any]:
        """The declaration as the Response echoes it (every key its type has)."""
        return declaration

    def as_given(self, declaration: dict[str, Any]) -> dict[str, Any]:
        """The declaration as the SDK's type checks it (keys OpenAI lets a client leave out)."""
        return declaration

    @abstractmethod
    def group(self, declarations: list[tuple[str, dict[str, Any]]], names: Names, setup: ToolSetup) -> ToolGroup:
        """The request's tools of this kind: ``declarations`` are (param, declaration) pairs, already
        checked against the SDK's type. Duplicates and options this server cannot honour are 400s."""
