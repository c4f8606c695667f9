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


class Acceptance:
    """Whether the backend has accepted the request of a run's first step (its HTTP status).

    A non-streamed reply's head waits for it, so that a refusal before it is still a real HTTP
    error; it waits only the backend's status, not its first token. One future, woken by the
    acceptance or by the step's end: a wait costs the loop one pass."""

    __slots__ = ("_gate", "accepted")

    def __init__(self) -> None:
        self.accepted = False
        self._gate: asyncio.Future[None] | None = None

    def set(self) -> None:
        if not self.accepted:
            self.accepted = True
            if self._gate is not None and not self._gate.done():
                self._gate.set_result(None)

    async def refusal(self, first: asyncio.Future[Any]) -> BackendRefusal | None:
        """Wait until the request ``first`` (the first step) made is accepted or ``first`` ends: the
        backend's refusal when it came before any acceptance, else None."""
        if not self.accepted and not first.done():
            gate = self._gate = asyncio.get_running_loop().create_future()

            def ended(_: asyncio.Future[Any]) -> None:
                if not gate.done():
                    gate.set_result(None)

            first.add_done_callback(ended)
            try:
                await gate
            finally:
                first.remove_done_callback(ended)
        if self.accepted or not first.done() or first.cancelled():
            return None
        error = first.exception()
        return error if isinstance(error, BackendRefusal) else None
