"""Server-sent event framing and the streaming response that carries it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from rejoinder.engine.events import Event

_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode(event: Event) -> bytes:
    return b"event: " + event.type.encode() + b"\ndata: " + event.data + b"\n\n"


async def _frames(batches: AsyncIterator[list[Event]]) -> AsyncGenerator[bytes, None]:
    async for batch in batches:
        yield b"".join([encode(event) for event in batch])


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _EventStreamResponse(StreamingResponse):
    """Starlette's StreamingResponse without its per-response anyio task group (a measurable share
    of a short streamed turn): a plain task watches for the client leaving, and the stream stops
    at the next batch after it left. The run itself goes on regardless (ResponsesService.stream)."""

    def __init__(self, frames: AsyncGenerator[bytes, None]):
        super().__init__(frames, media_type="text/event-stream", headers=_HEADERS)
        self.frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.ensure_future(_disconnect(receive))
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self.frames:
                if gone.done():
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            else:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
            await self.frames.aclose()


def sse_response(batches: AsyncIterator[list[Event]]) -> StreamingResponse:
    """One write per batch of events (see ``ResponsesService.stream``)."""
    return _EventStreamResponse(_frames(batches))


def sse_frames_response(frames: AsyncIterator[bytes]) -> StreamingResponse:
    """For streams already framed (a resumed background stream replays stored events)."""
    return StreamingResponse(frames, media_type="text/event-stream", headers=_HEADERS)
