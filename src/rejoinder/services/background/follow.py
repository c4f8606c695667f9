"""Replaying and following a background response's stream, from whichever replica runs it.

Events come from the database, so any replica serves ``GET /v1/responses/{id}?stream=true``. The
follower re-reads when a write of that response's events wakes it (``store/notify.py``), and every
``fallback_seconds`` in case a wake-up was missed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from rejoinder.engine.events import TERMINAL_EVENT_TYPES, TERMINAL_STATUSES, Event, terminal_event
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

    async def follow(self, response_id: str, after: int) -> AsyncIterator[list[Event]]:
        """The events after ``after``, then the live ones, up to the terminal event, in batches (the
        events each read found); the transport frames them (http/sse.py).

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
                if rows:
                    batch = _stored(rows)
                    last = batch[-1].sequence_number
                    yield batch
                    if batch[-1].type in TERMINAL_EVENT_TYPES:
                        return
                    continue
                status = await self.store.status(response_id)
                if status is None:
                    return
                if status not in ACTIVE_STATUSES:
                    rest = await self._rest(response_id, status, last)
                    if rest:
                        yield rest
                    return
                await signal.wait(self.wakeups.fallback_seconds)

    async def _rest(self, response_id: str, status: str, last: int) -> list[Event]:
        """The end of an ended response's stream: what was stored after ``last`` (it ended between
        the two reads), else the terminal event made from the stored response."""
        events = _stored(await self.store.events_after(response_id, last))
        if events:
            end = next((i for i, e in enumerate(events) if e.type in TERMINAL_EVENT_TYPES), None)
            if end is not None:
                return events[:end + 1]
            last = events[-1].sequence_number
        stored = await self.store.get(response_id, ACROSS_TENANTS) if status in TERMINAL_STATUSES else None
        event = terminal_event(stored.body, last + 1) if stored is not None else None
        return [*events, event] if event is not None else events


def _stored(rows: list[tuple[int, str]]) -> list[Event]:
    """Stored events (sequence number, JSON), up to and including a terminal one."""
    events = []
    for seq, data in rows:
        events.append(Event(orjson.loads(data)["type"], seq, data.encode()))
        if events[-1].type in TERMINAL_EVENT_TYPES:
            break
    return events
