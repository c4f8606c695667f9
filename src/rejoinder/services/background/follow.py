"""Replaying and following a background response's stream, from whichever replica runs it.

Events come from the database, so any replica serves ``GET /v1/responses/{id}?stream=true``. The
follower re-reads when a write of that response's events wakes it (``store/notify.py``), and every
``fallback_seconds`` in case a wake-up was missed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from rejoinder.engine.events import TERMINAL_EVENT_TYPES, TERMINAL_STATUSES, event_json, sse_frame, terminal_event
from rejoinder.errors import InvalidRequest, not_found
from rejoinder.store.notify import EVENTS, Wakeups
from rejoinder.store.responses import ResponseStore
from rejoinder.store.schema import ACTIVE_STATUSES
from rejoinder.tenant import ACROSS_TENANTS, Tenant


class Followers:
    def __init__(self, store: ResponseStore, wakeups: Wakeups):
        self.store = store
        self.wakeups = wakeups

    async def check_streamable(self, response_id: str, tenant: Tenant) -> None:
        stored = await self.store.get(response_id, tenant)
        if stored is None:
            raise not_found("Response", response_id)
        if not stored.background:
            raise InvalidRequest("This response cannot be streamed because it was not created with "
                                 "background=true.", param="stream")

    async def follow(self, response_id: str, after: int) -> AsyncIterator[bytes]:
        """SSE frames of the events after ``after``, then the live ones, up to the terminal event.

        A run stores its last events and its terminal event with its final state, so a response
        found ended has all its events stored; one settled by lease recovery has no terminal
        event, which is then made from the stored response. A cancelled response has none: its
        stream just ends.
        """
        last = after
        with self.wakeups.watch(EVENTS, response_id) as signal:
            while True:
                signal.clear()
                rows = await self.store.events_after(response_id, last)
                for seq, data in rows:
                    last = seq
                    kind = orjson.loads(data)["type"]
                    yield sse_frame(kind, data)
                    if kind in TERMINAL_EVENT_TYPES:
                        return
                if rows:
                    continue
                status = await self.store.status(response_id)
                if status is None:
                    return
                if status not in ACTIVE_STATUSES:
                    for frame in await self._rest(response_id, status, last):
                        yield frame
                    return
                await signal.wait(self.wakeups.fallback_seconds)

    async def _rest(self, response_id: str, status: str, last: int) -> list[bytes]:
        """The end of an ended response's stream: what was stored after ``last`` (it ended between
        the two reads), else the terminal event made from the stored response."""
        frames = []
        for seq, data in await self.store.events_after(response_id, last):
            last = seq
            kind = orjson.loads(data)["type"]
            frames.append(sse_frame(kind, data))
            if kind in TERMINAL_EVENT_TYPES:
                return frames
        stored = await self.store.get(response_id, ACROSS_TENANTS) if status in TERMINAL_STATUSES else None
        event = terminal_event(stored.body, last + 1) if stored is not None else None
        if event is not None:
            frames.append(sse_frame(event.type, event_json(event)))
        return frames
