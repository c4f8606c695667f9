"""Compaction: the model summarises a long history, and the summary stands in for it from then on.

A ``compaction`` item holds a sealed blob (crypto/sealing.py, purpose ``compaction``, bound to the
tenant): the summary and the ids of the items it covers. The items it covers are every item of
the context it compacted but the user's own messages (kept verbatim, as OpenAI keeps them) and a
tool call whose output comes after it (a call and its output are never split). When a context
holds a compaction item, ``view`` puts the summary, as one user message, where the first covered
item was, and leaves the covered items out: what the model reads, what ``input_tokens`` counts and
what a later compaction summarises. The stored items are never changed.

Compaction is made by ``POST /v1/responses/compact`` (``services/compaction.py``) and by a create
with ``context_management: [{type: compaction, compact_threshold}]`` (when the context, counted as
``input_tokens`` counts it, passes the threshold) or with a ``compaction_trigger`` input item: the
run then compacts before its first model call and its output starts with the compaction item
(``Compactor.events``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from openai.types import responses as T

from rejoinder.backends.base import Admission, ModelRoute
from rejoinder.backends.chat_templates import reshape
from rejoinder.backends.token_count import count_tokens
from rejoinder.crypto.sealing import KeyRing, Purpose, SealError, invalid_encrypted_content
from rejoinder.engine import chunks as C
from rejoinder.engine.chat_request import chat_body
from rejoinder.engine.context import build_messages
from rejoinder.engine.events import Event, ResponseState
from rejoinder.engine.upstream import stream_step
from rejoinder.ids import new_item_id
from rejoinder.tenant import Tenant

SUMMARY_PREFIX = "Summary of the earlier part of this conversation (it replaces the messages it covers):\n"
SUMMARY_REQUEST = (
    "Summarise the conversation above so that it can be continued from the summary alone: the user's goals "
    "and instructions, decisions made, facts learned, every tool call that matters with its result, files "
    "and identifiers mentioned, and what remains to be done. Write the summary only."
)
SUMMARY_MAX_TOKENS = 2048


@dataclass(frozen=True)
class Opened:
    """A compaction item's sealed content."""

    summary: str
    covered: frozenset[str]


@dataclass
class Summaries:
    """The compaction items of one context, opened (item id -> content)."""

    opened: dict[str, Opened] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.opened)


def _is_user_message(item: dict[str, Any]) -> bool:
    return item.get("type", "message") == "message" and item.get("role") == "user"


def open_all(ring: KeyRing, tenant: Tenant, items: list[dict[str, Any]], first_input: int) -> Summaries:
    """Open every compaction item of a context; one that does not open (tampered, another tenant's,
    another server's) is a 400 naming it (``first_input``: where the request's input starts)."""
    out = Summaries()
    for i, item in enumerate(items):
        if item.get("type") != "compaction":
            continue
        param = f"input[{i - first_input}].encrypted_content" if i >= first_input else "previous_response_id"
        try:
            body = orjson.loads(ring.open(Purpose.COMPACTION, tenant, str(item.get("encrypted_content", ""))))
            out.opened[item["id"]] = Opened(str(body["summary"]), frozenset(body["covered"]))
        except (SealError, orjson.JSONDecodeError, KeyError, TypeError):
            raise invalid_encrypted_content(item.get("id"), param) from None
    return out


def view(items: list[dict[str, Any]], summaries: Summaries) -> list[dict[str, Any]]:
    """What the model reads of ``items``: covered items out, each summary where its first covered
    item was (or where the compaction item is, when none of them is in ``items``)."""
    if not summaries:
        return items
    covered_by: dict[str, str] = {}
    for item_id, opened in summaries.opened.items():
        for covered in opened.covered:
            covered_by[covered] = item_id
    placed: set[str] = set()
    out: list[dict[str, Any]] = []

    def place(item_id: str) -> None:
        if item_id not in placed and item_id in summaries.opened:
            placed.add(item_id)
            out.append({"type": "message", "role": "user", "id": item_id,
                        "content": SUMMARY_PREFIX + summaries.opened[item_id].summary})

    for item in items:
        owner = covered_by.get(item.get("id", ""))
        if owner is not None and owner in summaries.opened:
            place(owner)
        elif item.get("type") == "compaction":
            place(item["id"])
        else:
            out.append(item)
    return out


def _new_turn(items: list[dict[str, Any]]) -> int:
    """Where the context's last turn of client input starts (user messages, tool outputs,
    approvals at its end): it stays as it is, the model answers it next."""
    start = len(items)
    while start and (_is_user_message(items[start - 1]) or str(items[start - 1].get("type", "")).endswith(
            ("_output", "_response"))):
        start -= 1
    return start


def covered_ids(items: list[dict[str, Any]]) -> list[str]:
    """What a compaction of ``items`` covers: every item before the last turn's input but the
    user's messages, and a call whose output is in that input (a call and its output stay together)."""
    keep_after = _new_turn(items)
    answered = {i.get("call_id") for i in items[keep_after:]}
    out = []
    for item in items[:keep_after]:
        if not item.get("id") or _is_user_message(item):
            continue
        if item.get("call_id") is not None and item["call_id"] in answered:
            continue
        out.append(item["id"])
    return out


def first_step_body(plan: Any, summaries: Summaries | None = None) -> dict[str, Any]:
    """The chat body of the plan's first inference step, as the run makes it: what
    ``input_tokens`` counts and the compaction threshold is compared with."""
    params = plan.params
    toolset = plan.toolset
    items = view([*plan.history, *plan.input_items], summaries or plan.summaries)
    messages = build_messages(items, params.get("instructions"), toolset.aliases(), toolset.item_types,
                              plan.unsealed, (params.get("reasoning") or {}).get("context"))
    choice, only = toolset.resolve_choice(params.get("tool_choice"))
    tools = toolset.chat_tools(only)
    return chat_body(plan.route, params, reshape(messages, set(plan.route.template_rules)), tools,
                     choice if tools else None)


def attach(plan: Any, ring: KeyRing | None) -> None:
    """Open the context's compaction items (a 400 for one that does not open) and give the plan
    its compactor when the request asks for compaction."""
    if ring is None:  # a server without a key ring (a bare ResponsesService in a test) opens nothing
        return
    plan.summaries = open_all(ring, plan.tenant, [*plan.history, *plan.input_items], len(plan.history))
    thresholds = [e["compact_threshold"] for e in plan.context_management
                  if e.get("type") == "compaction" and e.get("compact_threshold") is not None]
    if plan.compaction_requested or plan.context_management:
        plan.compactor = Compactor(ring, min(thresholds) if thresholds else None, plan.compaction_requested,
                                   plan.summaries)


async def summarise(route: ModelRoute, items: list[dict[str, Any]], summaries: Summaries,
                    item_types: Any, admission: Admission) -> tuple[str, dict[str, int]]:
    """The model's summary of ``items`` (their view), and the call's token usage."""
    messages = build_messages(view(items, summaries), None, None, item_types)
    messages.append({"role": "user", "content": SUMMARY_REQUEST})
    params = {"truncation": "auto", "max_output_tokens": SUMMARY_MAX_TOKENS}
    text: list[str] = []
    usage = {"input_tokens": 0, "output_tokens": 0}
    async for chunks in stream_step(route, params, messages, [], None, admission):
        for delta in C.batch_deltas(chunks):
            if isinstance(delta, C.TextDelta):
                text.append(delta.text)
            elif isinstance(delta, C.Usage):
                usage["input_tokens"] += delta.prompt_tokens
                usage["output_tokens"] += delta.completion_tokens
    return "".join(text).strip(), usage


def seal_item(ring: KeyRing, tenant: Tenant, summary: str, covered: list[str]) -> dict[str, Any]:
    blob = ring.seal(Purpose.COMPACTION, tenant, orjson.dumps({"summary": summary, "covered": covered}))
    return {"id": new_item_id("compaction"), "type": "compaction", "encrypted_content": blob}


@dataclass
class Compactor:
    """A run's compaction before its first model call (``RunPlan.compactor``): when asked to
    (``compaction_trigger``) or when the context passes the threshold."""

    ring: KeyRing
    threshold: int | None  # tokens; None: only when triggered
    triggered: bool
    summaries: Summaries = field(default_factory=Summaries)

    async def due(self, plan: Any) -> bool:
        if self.triggered:
            return True
        if self.threshold is None:
            return False
        return (await count_tokens(plan.route, first_step_body(plan))).tokens > self.threshold

    async def events(self, state: ResponseState, plan: Any) -> AsyncIterator[list[Event]]:
        """The compaction item's events; the summary is in ``self.summaries`` once it is done."""
        items = [*plan.history, *plan.input_items]
        covered = covered_ids(items)
        if not covered:
            return
        placeholder = {"id": new_item_id("compaction"), "type": "compaction", "encrypted_content": ""}
        index, added = state.add_item(placeholder)
        yield [added, state.item_event(T.ResponseCompactionCompactingEvent, "response.compaction.compacting", index)]
        summary, usage = await summarise(plan.route, items, self.summaries, plan.toolset.item_types, plan.admission)
        sealed = seal_item(self.ring, plan.tenant, summary, covered)
        placeholder["encrypted_content"] = sealed["encrypted_content"]
        state.add_usage(usage["input_tokens"], usage["output_tokens"], 0, 0)
        self.summaries.opened[placeholder["id"]] = Opened(summary, frozenset(covered))
        yield [state.item_done(index)]
