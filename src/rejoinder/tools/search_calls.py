"""What the two search tools share: their items' citable sources, and one numbering of them.

A search result's marker number is its position among every citable result of the context, in
item order (earlier turns, this turn's input, this response's output). The engine rebuilds the
transcript for each inference step by replaying items in that order, and the response's
``Sources`` (one per request, in ``ToolSetup.shared``) is numbered by the same walk, so ``[3]`` in the model's answer is
the third result it was shown, on this turn and on every later one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from rejoinder.engine.events import Event, ResponseState
from rejoinder.ids import new_item_id
from rejoinder.item_types import ReplayScope
from rejoinder.tools.citations import Source, Sources
from rejoinder.tools.interface import CallEnv, ModelCall, Offer

_COUNTER = "search_calls.next_marker"
_SHARED = "search_calls.sources"


def parse_query(arguments: str, tool: str, max_chars: int) -> str:
    """The ``query`` of a model's call to ``tool``; ValueError with a message for the model."""
    how = f'call {tool} with {{"query": "..."}}'
    try:
        args = json.loads(arguments or "{}")
    except ValueError:
        raise ValueError(f"The arguments are not valid JSON; {how}.") from None
    query = args.get("query") if isinstance(args, dict) else None
    if isinstance(query, list):  # some models send OpenAI's internal form, a list of queries
        query = " ".join(q for q in query if isinstance(q, str))
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"The query is empty; {how}.")
    return query.strip()[:max_chars]


def sources_of(item: dict[str, Any]) -> list[Source]:
    """The citable results a stored search item holds, in the order the model saw them."""
    kind = item.get("type")
    if kind == "file_search_call":
        return [Source("file", file_id=r.get("file_id") or "", filename=r.get("filename") or "")
                for r in item.get("results") or [] if isinstance(r, dict) and r.get("file_id")]
    if kind == "web_search_call":
        return [Source("url", url=r["url"], title=r.get("title") or r["url"])
                for r in item.get("results") or [] if isinstance(r, dict) and r.get("url")]
    return []


def sources(shared: dict[str, Any]) -> Sources:
    """The request's citable sources, shared by every search tool of the request."""
    found = shared.get(_SHARED)
    if found is None:
        found = shared[_SHARED] = Sources()
    return found


def seed(registry: Sources, items: Iterable[dict[str, Any]]) -> None:
    """Number the results of the context's earlier search items, once per request."""
    if registry.seeded:
        return
    registry.seeded = True
    for item in items:
        for source in sources_of(item):
            registry.add(source)


def register(registry: Sources, item: dict[str, Any]) -> list[int]:
    """Number a search item this response just made; the numbers the model is shown."""
    return [registry.add(source) for source in sources_of(item)]


def replay_numbers(scope: ReplayScope, count: int) -> list[int]:
    """The marker numbers of the next ``count`` results, replaying items in order."""
    note = scope.notes.setdefault(_COUNTER, {"next": 1})
    first = note["next"]
    note["next"] = first + count
    return list(range(first, first + count))


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[:cut if cut > limit // 2 else limit] + " ..."


def results_text(header: str, lines: list[tuple[int, str, str]], budget_chars: int) -> str:
    """Results as the model reads them: ``[n] label: text [n]``, the marker repeated after the text
    (a model that copies a sentence copies its marker with it), within ``budget_chars``."""
    share = max(200, budget_chars // max(len(lines), 1))
    return "\n".join([*(f"[{n}] {label}: {shorten(text, share)} [{n}]" for n, label, text in lines),
                      f"({header} Cite a result by writing its marker, like [{lines[0][0]}], after the sentence "
                      "that uses it.)"])


class SearchCall(ModelCall):
    """A search tool's call. Its item starts ``in_progress`` as soon as the model names the tool
    (``started``: the item's ``output_item.added`` and in-progress events); ``run`` searches once
    the arguments are complete. Subclasses name the item type, its in-progress event and its
    own starting fields."""

    on_server = True
    item_type: str
    in_progress_event: Any  # the SDK's ``Response<Kind>CallInProgressEvent``

    def __init__(self, env: CallEnv, group: Any):
        self.state: ResponseState = env.state
        self.env = env
        self.group = group
        self.arguments = ""
        item = {"id": new_item_id(self.item_type), "type": self.item_type, "status": "in_progress",
                **self.starting_fields()}
        self.index, added = self.state.add_item(item)
        self.started = [added, self._event(self.in_progress_event, "in_progress")]

    def starting_fields(self) -> dict[str, Any]:
        return {}

    def _event(self, kind: Any, phase: str) -> Event:
        return self.state.item_event(kind, f"response.{self.item_type}.{phase}", self.index)

    def delta(self, text: str) -> list[Event]:
        self.arguments += text
        return []


class SearchOffer(Offer):
    """The one function a search tool offers the model; a call to it is ``call(env)``."""

    def __init__(self, name: str, function: dict[str, Any], call: Callable[[CallEnv], SearchCall]):
        self.name = name
        self.function = function
        self.call = call

    def chat_tool(self) -> dict[str, Any]:
        return self.function

    def on_server(self) -> bool:
        return True

    def begin(self, env: CallEnv, call_id: str) -> tuple[ModelCall, list[Event]]:
        call = self.call(env)
        return call, call.started
