"""Server-sent event framing."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from rejoinder.engine.events import Event


def encode(event: Event) -> bytes:
    return b"event: " + event.type.encode() + b"\ndata: " + event.model_dump_json(exclude_unset=True).encode() + b"\n\n"


async def _frames(events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    async for event in events:
        yield encode(event)


def sse_response(events: AsyncIterator[Event]) -> StreamingResponse:
    return StreamingResponse(
        _frames(events), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
