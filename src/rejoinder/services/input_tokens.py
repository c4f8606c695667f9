"""``POST /v1/responses/input_tokens``: what a create with the same fields would send its model, counted.

The request is read as a create would be (the same validation, the same context: a
``previous_response_id`` chain or a conversation, tools, instructions) and its first inference
step's chat body is built exactly as the engine builds it; ``backends/token_count.count_tokens``
counts that body with the model's own tokenizer where there is one (the embedded model in process,
with its chat template and default system prompt; vLLM's and llama.cpp's ``/tokenize``) and
otherwise estimates it (documented in token_count.py). Compaction items in the input count as the
summary that stands in for the history they replace.
"""

from __future__ import annotations

from typing import Any

from openai.types.responses.input_token_count_params import InputTokenCountParams

from rejoinder.api.create_response import validate_create
from rejoinder.api.known_keys import refuse_unknown_keys
from rejoinder.backends.token_count import count_tokens
from rejoinder.engine.compaction import attach, first_step_body
from rejoinder.engine.prepare import prepare
from rejoinder.errors import InvalidRequest
from rejoinder.request_context import RequestContext

PERSONALITIES = ("friendly", "pragmatic")


def _as_create(body: Any) -> dict[str, Any]:
    """The count request as the create body it stands for (``input`` may be left out)."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    data = {key: value for key, value in body.items() if value is not None}
    refuse_unknown_keys({k: v for k, v in data.items() if k != "input"}, InputTokenCountParams)
    personality = data.pop("personality", None)  # a style hint of OpenAI's own models: no tokens here
    if personality is not None and not isinstance(personality, str):
        raise InvalidRequest("Invalid type for 'personality': expected a string.", param="personality",
                             code="invalid_type")
    if "model" not in data:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    data.setdefault("input", [])
    data["store"] = False
    return data


async def count_input_tokens(body: Any, context: RequestContext, services: Any) -> dict[str, Any]:
    req = validate_create(_as_create(body), services.responses.tools)
    plan = await prepare(req, context, services.registry, services.responses.responses, services.conversations,
                         services.responses.tools, services.settings, generate=False, admit=False,
                         sealing=services.sealing)
    try:
        attach(plan, services.sealing)
        count = await count_tokens(plan.route, first_step_body(plan))
    finally:
        await plan.toolset.aclose()
    return {"object": "response.input_tokens", "input_tokens": count.tokens}
