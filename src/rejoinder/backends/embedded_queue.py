"""First-come, first-served access to the embedded model's single llama.cpp context.

One context can run one generation at a time. Requests wait here, on the event loop, in arrival
order; a waiter that is cancelled (its client went away, the server is shutting down) leaves the
line without ever touching the model. The line has a bound so that an overloaded server says so
(429) instead of letting latency grow without limit.
"""

from __future__ import annotations

import asyncio
from collections import deque

from rejoinder.errors import BackendError, Overloaded


def busy_message(waiting: int) -> str:
    return (f"The embedded model is busy: {waiting} request(s) are already waiting for it. "
            "Retry in a few seconds, or raise embedded.max_queue.")


class ModelQueue:
    """A FIFO lock with a bounded line of waiters and a synchronous admission check."""

    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self._busy = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def full(self) -> bool:
        return self._busy and self.waiting >= self.max_waiting

    def admit(self) -> None:
        """Refuse a new response before it starts (a real HTTP 429) when the line is full."""
        if self.full():
            raise Overloaded(busy_message(self.waiting))

    async def acquire(self, admitted: bool = False) -> None:
        """Wait for the model. A response that passed :meth:`admit` (before its first event) always
        waits, so its later inference steps, such as the one after a tool call, never fail on a
        full line halfway through it; only a caller that skipped admission can be refused here."""
        if not self._busy and not self.waiting:
            self._busy = True
            return
        if self.full() and not admitted:
            raise BackendError(busy_message(self.waiting), "rate_limit_exceeded", 429)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the model was handed to us just as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Hand the model to the longest waiter, or mark it idle."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._busy = False
