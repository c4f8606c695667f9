"""``truncation: "auto"``: the oldest whole items leave the transcript until it fits the window.

Works on the chat messages (``context.py`` made them from the items, one message an item, a
model's calls grouped in one assistant message): system and developer messages always stay; an
assistant message with tool calls leaves together with its tool results, so a call is never
separated from its output; the newest unit always stays. Counting is by the route's
``TokenCounter``; a few counts at most, each round dropping what the per-message estimates,
scaled to the last count, say is over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rejoinder.backends.refusal import BackendRefusal, context_length_exceeded
from rejoinder.backends.token_count import TokenCount, TokenCounter, estimate, upper_bound

log = logging.getLogger(__name__)

MAX_COUNTS = 4  # counts (tokenizer calls) one fitting may take
DEFAULT_ROOM = 1024  # tokens kept for the answer without max_output_tokens (an eighth of a small window)
MIN_ROOM = 16  # the smallest max_output_tokens the API accepts

Messages = list[dict[str, Any]]


def answer_room(window: int, max_output_tokens: int | None) -> int:
    """Tokens kept free for the answer: ``max_output_tokens``, or a default; at most half the window."""
    return max(MIN_ROOM, min(max_output_tokens or min(DEFAULT_ROOM, window // 8), window // 2))


def units(messages: Messages) -> list[list[int]]:
    """The droppable units, oldest first: indexes of a message, or of an assistant message with
    tool calls and the tool results after it. System messages are no unit: they stay."""
    out: list[list[int]] = []
    for i, m in enumerate(messages):
        if m["role"] == "system":
            continue
        if m["role"] == "tool" and out and (messages[out[-1][0]].get("tool_calls")):
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _without(messages: Messages, dropped: set[int]) -> Messages:
    return [m for i, m in enumerate(messages) if i not in dropped]


def too_long(tokens: int, window: int, exact: bool) -> BackendRefusal:
    size = f"{tokens} tokens" if exact else f"about {tokens} tokens (estimated)"
    return context_length_exceeded(
        f"The input is {size}: even with only its newest item kept it does not fit this model's context "
        f"window of {window} tokens with room for an answer. Shorten the input.", window, tokens)


def drop_oldest(messages: Messages, over: int, scale: float) -> tuple[Messages, int] | None:
    """Drop the oldest units whose estimated tokens (times ``scale``) cover ``over``; at least one,
    never the newest. None when there is nothing left to drop."""
    candidates = units(messages)[:-1]
    if not candidates:
        return None
    dropped: set[int] = set()
    freed = 0.0
    for unit in candidates:
        dropped.update(unit)
        freed += scale * estimate({"messages": [messages[i] for i in unit]})
        if freed >= over:
            break
    return _without(messages, dropped), len(dropped)


async def fit(
    messages: Messages,
    body_of: Callable[[Messages], dict[str, Any]],
    counter: TokenCounter,
    window: int,
    room: int,
    known: TokenCount | None = None,
) -> Messages:
    """``messages`` with the oldest units dropped until the prompt and ``room`` fit ``window``.

    ``body_of`` makes the upstream body of a transcript (what is counted); ``known`` is the count
    of ``messages`` when the caller has it (from a backend's error). Raises a context-length
    refusal when even the newest unit alone does not fit."""
    limit = window - room
    if known is None:
        body = body_of(messages)
        if upper_bound(body) <= limit:
            return messages  # sure to fit: nothing to count
        known = await counter.count(body)
    count, total_dropped = known, 0
    for _ in range(MAX_COUNTS):
        if count.tokens <= limit:
            break
        scale = count.tokens / max(estimate(body_of(messages)), 1)
        result = drop_oldest(messages, count.tokens - limit, scale)
        if result is None:
            raise too_long(count.tokens, window, count.exact)
        messages, dropped = result
        total_dropped += dropped
        count = await counter.count(body_of(messages))
    if total_dropped:
        log.info("truncation: dropped %d message(s) to fit a %d-token window (now %s%d tokens)",
                 total_dropped, window, "" if count.exact else "~", count.tokens)
    return messages


def drop_half(messages: Messages) -> Messages | None:
    """With nothing known of the window: the oldest half of the droppable units (at least one)."""
    candidates = units(messages)[:-1]
    if not candidates:
        return None
    take = candidates[: max(1, len(candidates) // 2)]
    return _without(messages, {i for unit in take for i in unit})
