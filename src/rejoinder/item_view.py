"""What of a stored item a reader sees: the parts OpenAI shows only when ``include`` asks.

A ``file_search_call`` keeps its ``results`` and a ``web_search_call`` its sources and results in
the store (the model reads them back on later turns, and a later ``GET ...?include=`` may ask for
them); a response, an event or a listing shows them only with the matching ``include`` value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FILE_SEARCH_RESULTS = "file_search_call.results"
WEB_SEARCH_SOURCES = "web_search_call.action.sources"
WEB_SEARCH_RESULTS = "web_search_call.results"
HIDING_TYPES = frozenset({"file_search_call", "web_search_call"})


def shown(item: dict[str, Any], include: Iterable[str] | None) -> dict[str, Any]:
    """``item`` as a reader with ``include`` sees it (the item itself when nothing is hidden)."""
    kind = item.get("type")
    if kind not in HIDING_TYPES:
        return item
    wanted = set(include or ())
    if kind == "file_search_call":
        return item if FILE_SEARCH_RESULTS in wanted else {**item, "results": None}
    out = item
    if WEB_SEARCH_RESULTS not in wanted and "results" in out:
        out = {k: v for k, v in out.items() if k != "results"}
    action = out.get("action")
    if WEB_SEARCH_SOURCES not in wanted and isinstance(action, dict) and "sources" in action:
        out = {**out, "action": {k: v for k, v in action.items() if k != "sources"}}
    return out


def hides(items: Iterable[dict[str, Any]]) -> bool:
    return any(i.get("type") in HIDING_TYPES for i in items)


def shown_items(items: list[dict[str, Any]], include: Iterable[str] | None) -> list[dict[str, Any]]:
    return [shown(i, include) for i in items] if hides(items) else items


def shown_response(body: dict[str, Any], include: Iterable[str] | None) -> dict[str, Any]:
    output = body.get("output") or []
    return {**body, "output": shown_items(output, include)} if hides(output) else body
