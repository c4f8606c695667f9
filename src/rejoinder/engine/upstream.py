"""One inference step's call to the backend: the transcript fitted and shaped for the model, and
a refusal the engine can act on acted on.

- ``truncation: "auto"``: with the context window known (``context_window.py``), the oldest
  items are dropped before the call until the prompt fits (``truncation.py``); with it unknown,
  the backend's context-length error drops them and the call is made once more.
- Chat-template rules (``chat_templates.py``): the model's known rules shape every call; a
  template error teaching a new one is learned for the model (for the life of the process: each
  replica learns on its own) and the call is made again, reshaped. A call is retried only for a
  rule it did not apply yet, so a template that keeps refusing costs one retry per rule at most.
- Any other refusal is raised as it came: its reason reaches the client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from rejoinder.backends.base import NOT_ADMITTED, Admission, ModelRoute
from rejoinder.backends.chat_templates import reshape
from rejoinder.backends.chunk import Chunk
from rejoinder.backends.context_window import Discovered, context_window
from rejoinder.backends.refusal import BackendRefusal
from rejoinder.backends.token_count import EstimateCounter, TokenCount, TokenCounter, counter_for
from rejoinder.engine import truncation
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

    auto = params.get("truncation") == "auto"
    counter: TokenCounter | None = None
    if auto:
        found = await context_window(route)
        counter = counter_for(route, found)
        if found.window is not None:
            room = truncation.answer_room(found.window, params.get("max_output_tokens"))
            messages = await truncation.fit(messages, body_of, counter, found.window, room)
    overflowed = False
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
            if refusal.reason == "context_length" and auto and not overflowed:
                overflowed = True
                smaller = await _after_overflow(route, messages, refusal, body_of, counter, params)
                if smaller is not None:
                    messages = smaller
                    continue
            raise


async def _after_overflow(
    route: ModelRoute,
    messages: list[dict[str, Any]],
    refusal: BackendRefusal,
    body_of: Any,
    counter: TokenCounter | None,
    params: dict[str, Any],
) -> list[dict[str, Any]] | None:
    """The transcript to retry with after a context-length error, or None when dropping items would
    not help. The error's numbers are used when it has them (and its window remembered)."""
    window = refusal.window
    if window is not None:
        server = route.discovered.server if route.discovered else None
        route.discovered = Discovered(window, server, "the backend's context-length error", time.monotonic())
    else:
        window = route.context_window or (route.discovered.window if route.discovered else None)
    if window is None:
        return truncation.drop_half(messages)
    room = truncation.answer_room(window, params.get("max_output_tokens"))
    known = TokenCount(refusal.prompt_tokens, exact=True) if refusal.prompt_tokens else None
    try:
        fitted = await truncation.fit(messages, body_of, counter or EstimateCounter(), window, room, known)
    except BackendRefusal:
        return None
    if fitted is not messages:
        return fitted
    # By its numbers it fits: with the error's own count, something else is too long (the answer's
    # max_output_tokens); without one, our count was wrong, and half the oldest items go.
    return None if known is not None else truncation.drop_half(messages)
