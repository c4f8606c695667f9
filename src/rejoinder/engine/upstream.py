"""One inference step's call to the backend: the transcript shaped for the model, and a refusal
the engine can act on acted on.

- Chat-template rules (``chat_templates.py``): the model's known rules shape every call; a
  template error teaching a new one is learned for the model (for the life of the process: each
  replica learns on its own) and the call is made again, reshaped. A call is retried only for a
  rule it did not apply yet, so a template that keeps refusing costs one retry per rule at most.
- Any other refusal is raised as it came: its reason reaches the client.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from rejoinder.backends.base import NOT_ADMITTED, Admission, ModelRoute
from rejoinder.backends.chat_templates import reshape
from rejoinder.backends.chunk import Chunk
from rejoinder.backends.refusal import BackendRefusal
from rejoinder.engine.chat_request import chat_body

log = logging.getLogger(__name__)


async def stream_step(
    route: ModelRoute,
    params: dict[str, Any],
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    tool_choice: Any,
    admission: Admission = NOT_ADMITTED,
) -> AsyncIterator[list[Chunk]]:
    """The backend's batches for ``messages`` (see ``ChatBackend.stream``)."""
    rules = set(route.template_rules)

    def body_of(transcript: list[dict[str, Any]]) -> dict[str, Any]:
        return chat_body(route, params, reshape(transcript, rules), tools, tool_choice)

    while True:
        produced = False
        try:
            async for batch in route.backend.stream(body_of(messages), admission):
                produced = produced or bool(batch)
                yield batch
            return
        except BackendRefusal as refusal:
            if produced:
                raise
            if refusal.rule is not None:
                learned = refusal.rule not in route.template_rules
                route.template_rules.add(refusal.rule)
                if learned:
                    log.info("model %s: its chat template requires %s (learned from: %s)", route.name,
                             refusal.rule, refusal.message[:200])
                if refusal.rule not in rules:
                    rules.add(refusal.rule)
                    continue
                raise
            raise

