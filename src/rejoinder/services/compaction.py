"""``POST /v1/responses/compact``: a history (``input``, or a stored chain by ``previous_response_id``)
made into a ``CompactedResponse``: the user's messages, then one ``compaction`` item whose sealed
blob holds the model's summary of the rest (engine/compaction.py). Nothing is stored: the client
sends the output back as the input of its next create.
"""

from __future__ import annotations

import time
from typing import Any

from openai.types.responses.response_compact_params import ResponseCompactParams

from rejoinder.api.create_response import validate_create
from rejoinder.api.known_keys import refuse_unknown_keys
from rejoinder.engine.compaction import attach, seal_item, summarise, view
from rejoinder.engine.events import new_response_id
from rejoinder.engine.prepare import prepare
from rejoinder.errors import InvalidRequest
from rejoinder.request_context import RequestContext

# Echoed hints of the compact request with no bearing on a summary made here.
_HINTS = ("image", "prompt_cache_options", "prompt_cache_retention", "safety_identifier", "service_tier")


def _as_create(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    data = {key: value for key, value in body.items() if value is not None}
    refuse_unknown_keys({k: v for k, v in data.items() if k != "input"}, ResponseCompactParams)
    if "model" not in data:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    for key in _HINTS:
        data.pop(key, None)
    data.setdefault("input", [])
    data["store"] = False
    return data


def _as_output(item: dict[str, Any]) -> dict[str, Any]:
    """A kept user message as an output item (its id and content as given)."""
    content = item.get("content")
    if isinstance(content, str):
        content = [{"type": "input_text", "text": content}]
    return {"id": item["id"], "type": "message", "role": "user", "status": "completed", "content": content}


async def compact(body: Any, context: RequestContext, services: Any) -> dict[str, Any]:
    req = validate_create(_as_create(body), services.responses.tools)
    plan = await prepare(req, context, services.registry, services.responses.responses, services.conversations,
                         services.responses.tools, services.settings, generate=False, admit=False,
                         sealing=services.responses.sealing)
    try:
        ring = services.sealing
        attach(plan, ring)
        items = [*plan.history, *plan.input_items]
        if not items:
            raise InvalidRequest("Nothing to compact: give an input or a previous_response_id.", param="input",
                                 code="missing_required_parameter")
        summary, usage = await summarise(plan.route, items, plan.summaries, plan.toolset.item_types,
                                         plan.admission)
    finally:
        await plan.toolset.aclose()
    kept = [i for i in view(items, plan.summaries)
            if i.get("type", "message") == "message" and i.get("role") == "user"
            and i.get("id") not in plan.summaries.opened]
    covered = [i["id"] for i in items if i.get("id") and not (i.get("type", "message") == "message"
                                                            and i.get("role") == "user")]
    sealed = seal_item(ring, context.tenant, summary, covered)
    return {
        "id": new_response_id(),
        "object": "response.compaction",
        "created_at": int(time.time()),
        "output": [*(_as_output(i) for i in kept), sealed],
        "usage": {
            "input_tokens": usage["input_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage["output_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["input_tokens"] + usage["output_tokens"],
        },
    }
