"""The non-streaming reply: the event stream run to its end, folded into the final Response."""

from __future__ import annotations

from typing import Any

from rejoinder.engine.loop import ResponseRun


async def fold(run: ResponseRun) -> dict[str, Any]:
    """Drive every event of ``run``; the state they were built from is the final response."""
    async for _batch in run.events():
        pass
    return run.state.response
