"""A background run's events, written to the database as they come, for followers on any replica."""

from __future__ import annotations

import asyncio
import logging

from rejoinder.store.responses import ResponseStore

log = logging.getLogger(__name__)


class EventLog:
    """Writes a run's events in batches: one write per flush, and a new flush starts as soon as the
    previous one ends, so a fast stream costs few transactions. Each write wakes the followers.

    The last events are not flushed here: ``pending`` goes into the transaction that stores the
    run's final state, with its terminal event (``BackgroundPersistence``), so a follower never
    finds the response ended without its last events. A failed flush keeps its events pending
    for the next one (or for that final transaction) and is logged once.
    """

    def __init__(self, store: ResponseStore, response_id: str):
        self.store = store
        self.response_id = response_id
        self.pending: list[tuple[int, str]] = []
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def add(self, sequence_number: int, data: str) -> None:
        self.pending.append((sequence_number, data))
        if not self._stopped and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        while self.pending and not self._stopped:
            batch, self.pending = self.pending, []
            try:
                await self.store.add_events(self.response_id, batch)
            except Exception:
                self.pending[:0] = batch  # in order, before what came meanwhile
                log.exception("storing events of background response %s failed; they are kept for its "
                              "final write", self.response_id)
                return

    async def stop(self) -> list[tuple[int, str]]:
        """Wait for the flush under way; return the events still to write (the caller writes them
        with the final state, then clears ``pending``)."""
        self._stopped = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        return list(self.pending)
