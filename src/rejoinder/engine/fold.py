"""The non-streaming reply: the event stream run to its end, folded into the final Response."""

from __future__ import annotations

from contextlib import aclosing
from typing import Protocol

from rejoinder.engine.events import TERMINAL_EVENT_TYPES, Event
from rejoinder.engine.loop import ResponseRun


class Reply(Protocol):
    """Where a non-streamed reply goes: its head once the run has started, then its body."""

    async def head(self) -> None: ...

    async def body(self, data: bytes) -> None: ...


async def fold(run: ResponseRun, reply: Reply) -> None:
    """Drive every event of ``run`` and reply with the final Response.

    The head goes out with the run's first events, which wait until the backend has accepted the
    request (its HTTP status, not its first token: ``ResponseRun.head_waits``). A refusal before
    that raises the client's HTTP error (a too-long input is a 400 ``context_length_exceeded``) and
    leaves no response behind; after it, the status is 200 whatever the run's outcome (a failed run
    is a ``failed`` Response), and the client reads the head while the model works instead of after
    it. The body is the terminal event's own JSON, byte for byte, sent as soon as that event exists
    (it is made after the commit); the run's clean-up follows it instead of delaying it."""
    run.head_waits = True
    run.sink = _ignore  # only the head and the terminal event matter here: the rest is not handed on
    started = replied = False

    async def body(terminal: Event) -> None:  # from the run's task, right after the commit
        nonlocal replied
        if started and not replied and terminal.response is not None:
            replied = True
            await reply.body(terminal.response)

    run.on_terminal = body
    async with aclosing(run.events()) as events:
        async for batch in events:
            if not started:
                await reply.head()
                started = True
            last = batch[-1]
            if last.type in TERMINAL_EVENT_TYPES and last.response is not None and not replied:
                replied = True
                await reply.body(last.response)
    if not replied:  # ``events()`` ends with a terminal event or raises: this is a bug, not bad input
        raise RuntimeError(f"response {run.plan.response_id} ended without a terminal event")


def _ignore(batch: list[Event]) -> None:
    return None
