"""Loading the context of a new response and deciding everything before its first event.

Everything that can be the client's fault is found here and reported as a 4xx: an unknown
``previous_response_id`` or conversation, a tool output without its call, an approval without
its request, a tool that cannot be prepared (a tool server out of reach: 424, as OpenAI answers).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rejoinder.api.create_response import CreateResponse
from rejoinder.api.items import normalize_item
from rejoinder.backends.base import Admission
from rejoinder.backends.registry import ModelRegistry
from rejoinder.crypto.sealing import KeyRing
from rejoinder.engine.context import build_messages
from rejoinder.engine.events import new_response_id
from rejoinder.engine.plan import RunPlan
from rejoinder.engine.reasoning import unseal
from rejoinder.errors import InvalidRequest, not_found
from rejoinder.item_types import ItemType
from rejoinder.request_context import RequestContext
from rejoinder.store.conversations import ConversationStore
from rejoinder.store.responses import ResponseStore
from rejoinder.tools.interface import Preparation, ToolSetup
from rejoinder.tools.loading import offered_declarations
from rejoinder.tools.registry import ToolKinds
from rejoinder.tools.toolset import Toolset

if TYPE_CHECKING:
    from rejoinder.config import Settings


def conversation_id_of(req: CreateResponse) -> str | None:
    conv = req.conversation
    return conv if isinstance(conv, str) or conv is None else conv.id


def _input_items(req: CreateResponse, known: dict[str, dict[str, Any]],
                 table: dict[str, ItemType]) -> list[dict[str, Any]]:
    if isinstance(req.input, str):
        return [normalize_item({"type": "message", "role": "user", "content": req.input}, table)]
    items = []
    for i, item in enumerate(req.input):
        if item["type"] == "item_reference":
            found = known.get(item["id"])
            if found is None:
                raise InvalidRequest(f"Item with id '{item['id']}' not found.", param=f"input[{i}].id",
                                     code="item_not_found")
            items.append(found)
        else:
            items.append(normalize_item(item, table))
    return items


def _new_to_conversation(items: list[dict[str, Any]], known: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The input items a conversation does not hold yet.

    An item already in the conversation (an ``item_reference`` to it, or the item sent back with
    its id) is context already: counting it twice would repeat tool calls upstream and break the
    conversation's one-id-per-item rule when the turn is appended. Two input items with one id are
    a 400 now rather than a failed commit after inference.
    """
    seen: set[str] = set()
    out = []
    for i, item in enumerate(items):
        if item["id"] in known:
            continue
        if item["id"] in seen:
            raise InvalidRequest(f"Duplicate item found with id {item['id']}.", param=f"input[{i}].id",
                                 code="duplicate_item")
        seen.add(item["id"])
        out.append(item)
    return out


def _reasoning_echo(reasoning: dict[str, Any]) -> dict[str, Any]:
    return {"effort": reasoning.get("effort"), "summary": reasoning.get("summary") or reasoning.get("generate_summary")}


def _initial_response(req: CreateResponse, response_id: str, conversation_id: str | None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "queued" if req.background else "in_progress",
        "background": req.background,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "max_tool_calls": req.max_tool_calls,
        "model": req.model,
        "output": [],
        "parallel_tool_calls": req.parallel_tool_calls,
        "previous_response_id": req.previous_response_id,
        "conversation": {"id": conversation_id} if conversation_id else None,
        "reasoning": _reasoning_echo(req.reasoning or {}),
        "service_tier": "default",
        "store": req.store,
        "temperature": req.temperature if req.temperature is not None else 1.0,
        "presence_penalty": req.presence_penalty if req.presence_penalty is not None else 0.0,
        "frequency_penalty": req.frequency_penalty if req.frequency_penalty is not None else 0.0,
        "text": {"format": (req.text or {}).get("format") or {"type": "text"},
                 "verbosity": (req.text or {}).get("verbosity") or "medium"},
        "tool_choice": req.tool_choice,
        "tools": req.tools,
        "top_logprobs": req.top_logprobs or 0,
        "top_p": req.top_p if req.top_p is not None else 1.0,
        "truncation": req.truncation or "disabled",
        "usage": None,
        "user": req.user,
        "safety_identifier": req.safety_identifier,
        "prompt_cache_key": req.prompt_cache_key,
        "prompt_cache_retention": req.prompt_cache_retention,
        "metadata": req.metadata or {},
    }
    # Hints the Response has a field for, echoed when given (api/parameters.py).
    if req.prompt_cache_options is not None:
        response["prompt_cache_options"] = {"mode": "implicit", "ttl": "30m", "comparison_response_id": None,
                                            **req.prompt_cache_options}
    if req.image is not None:
        response["image"] = {"context_compression": "disabled"}  # images go to the model as given
    if req.access_programs is not None:
        response["access_programs"] = req.access_programs
    return response


async def prepare(
    req: CreateResponse,
    context: RequestContext,
    registry: ModelRegistry,
    responses: ResponseStore,
    conversations: ConversationStore,
    tools: ToolKinds,
    settings: Settings,
    response_id: str | None = None,
    kept: dict[str, Any] | None = None,
    chain: list[dict[str, Any]] | None = None,
    generate: bool = True,
    admit: bool = True,
    sealing: KeyRing | None = None,
) -> RunPlan:
    """Everything decided before the first event, every 4xx included. ``kept``: what the tools'
    preparation kept when a queued background job was accepted (``Toolset.kept``), used instead
    of preparing again. ``chain``: the items of ``previous_response_id``'s chain when the caller
    holds them (a WebSocket's store=false responses), instead of reading the store. ``generate``:
    see RunPlan. ``admit=False``: a plan that will not run (counting its tokens): the backend is
    not asked."""
    tenant = context.tenant
    route = registry.resolve(req.model)
    conversation_id = conversation_id_of(req)
    history: list[dict[str, Any]] = []
    if req.previous_response_id:
        if chain is None:
            chain = await responses.chain_items(req.previous_response_id, tenant)
        if chain is None:
            raise not_found("Previous response", req.previous_response_id, param="previous_response_id")
        history = chain
    elif conversation_id:
        items = await conversations.context_items(conversation_id, tenant)
        if items is None:
            raise not_found("Conversation", conversation_id, param="conversation")
        history = items

    known = {item["id"]: item for item in history if item.get("id")}
    input_items = _input_items(req, known, tools.item_types)
    sent = [] if isinstance(req.input, str) else list(req.input)
    unsealed = unseal(sealing, tenant, history, list(zip(range(len(sent)), sent, input_items, strict=False)))
    if conversation_id:
        input_items = _new_to_conversation(input_items, known)
    known.update({item["id"]: item for item in input_items})
    # deferred tools wait for a tool search to load them; loaded tools join (tools/loading.py)
    declared = offered_declarations(req.tools, [*history, *input_items], tools.types)
    toolset = Toolset.from_request(declared, tools, ToolSetup(settings, tenant, tools.services))
    prep = Preparation(history, input_items, kept, known)
    toolset.read_input(prep)  # an approval without its request is a 400 now
    build_messages([*history, *input_items], None, None, tools.item_types)  # so is a tool output without its call

    params = req.model_dump(exclude_none=True)
    params["tools"] = req.tools
    try:
        await toolset.prepare(prep)
        toolset.resolve_choice(req.tool_choice)
        response = _initial_response(req, response_id or new_response_id(), conversation_id)
        # last: a refusal here must not hold a place
        admission = registry.admit(route, req, context.test_id) if admit else Admission(test_id=context.test_id)
    except BaseException:
        await toolset.aclose()
        raise
    return RunPlan(
        response=response,
        tenant=tenant,
        route=route,
        admission=admission,
        params=params,
        history=history,
        input_items=input_items,
        toolset=toolset,
        store=req.store,
        conversation_id=conversation_id,
        kept_request={"client_metadata": req.client_metadata} if req.client_metadata else None,
        context_management=req.context_management or [],
        compaction_requested=req.compaction_requested,
        request_id=context.request_id,
        generate=generate,
        sealing=sealing,
        unsealed=unsealed,
    )
