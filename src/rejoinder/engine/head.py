"""When a response's head may leave: the tasks a run starts before its first event."""

from __future__ import annotations

import asyncio
from typing import Any

from rejoinder.backends.refusal import BackendRefusal


async def let_run(task: asyncio.Future[Any], steps: int = 3) -> None:
    """Give a just-started task a few loop turns: enough to put a request on the wire (aiohttp on
    Python 3.11 writes the body from a task of its own, one turn later; the third is slack)."""
    for _ in range(steps):
        if task.done():
            return
        await asyncio.sleep(0)


async def cancel_task(task: asyncio.Future[Any]) -> None:
    if not task.done():
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def refused_before_accepting(first: asyncio.Future[Any], accepted: asyncio.Event) -> BackendRefusal | None:
    """Wait until the backend accepts the request ``first`` (a run's first step) made, or ``first``
    ends: the backend's refusal when it came before any acceptance, else None.

    A non-streamed reply's head waits for this, so that a refusal is still a real HTTP error;
    it waits only the backend's HTTP status, not its first token."""
    waiter = asyncio.ensure_future(accepted.wait())
    try:
        await asyncio.wait((first, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if accepted.is_set() or not first.done() or first.cancelled():
        return None
    error = first.exception()
    return error if isinstance(error, BackendRefusal) else None
