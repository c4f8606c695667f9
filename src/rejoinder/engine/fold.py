"""The non-streaming reply: the event stream run to its end, folded into the final Response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import aclosing

from rejoinder.engine.events import TERMINAL_EVENT_TYPES
from rejoinder.engine.loop import ResponseRun


async def fold(run: ResponseRun, reply: Callable[[bytes], Awaitable[None]]) -> None:
    """Drive every event of ``run`` and ``reply`` with the final Response: the terminal event's own
    JSON, byte for byte, sent as soon as that event exists (it is made after the commit). The run's
    clean-up follows the reply instead of delaying it."""
    replied = False
    async with aclosing(run.events()) as events:
        async for batch in events:
            last = batch[-1]
            if last.type in TERMINAL_EVENT_TYPES and last.response is not None:
                await reply(last.response)
                replied = True
    if not replied:  # ``events()`` ends with a terminal event or raises: this is a bug, not bad input
        raise RuntimeError(f"response {run.plan.response_id} ended without a terminal event")
