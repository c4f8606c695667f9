"""Server-sent event framing."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from rejoinder.engine.events import Event, event_json, sse_frame

_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode(event: Event) -> bytes:
    return sse_frame(event.type, event_json(event))


async def _frames(batches: AsyncIterator[list[Event]]) -> AsyncIterator[bytes]:
    async for batch in batches:
        yield b"".join([encode(event) for event in batch])


def sse_response(batches: AsyncIterator[list[Event]]) -> StreamingResponse:
    """One write per batch of events (see ``ResponsesService.stream``)."""
    return StreamingResponse(_frames(batches), media_type="text/event-stream", headers=_HEADERS)


def sse_frames_response(frames: AsyncIterator[bytes]) -> StreamingResponse:
    """For streams already framed (a resumed background stream replays stored events)."""
    return StreamingResponse(frames, media_type="text/event-stream", headers=_HEADERS)
