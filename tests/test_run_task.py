"""A run's work lives in one task: the backend's stream is resumed from the task that entered it,
so a timeout the backend sets around its stream fires (issue 17: the first step used to run in a
task of its own and the rest in the caller's)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from rejoinder.api.create_response import validate_create
from rejoinder.backends.base import NOT_ADMITTED, Admission, ModelRoute
from rejoinder.backends.chunk import chunks_from_json
from rejoinder.config import Settings
from rejoinder.engine.loop import Persistence, ResponseRun
from rejoinder.engine.plan import RunPlan
from rejoinder.engine.prepare import _initial_response
from rejoinder.observability.hooks import Telemetry
from rejoinder.tenant import Tenant
from rejoinder.tools.interface import ToolSetup
from rejoinder.tools.registry import BUILTIN
from rejoinder.tools.toolset import Toolset


def _chunk(text: str) -> bytes:
    return orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                         "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})


class _Stalling:
    """Sends two chunks, then stalls; the whole stream is bounded by ``asyncio.timeout``."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any] | None] = []

    async def stream(self, body: dict[str, Any], admission: Admission = NOT_ADMITTED) -> AsyncIterator[list[Any]]:
        async with asyncio.timeout(0.5):
            self.tasks.append(asyncio.current_task())
            yield []
            self.tasks.append(asyncio.current_task())
            yield chunks_from_json([_chunk("Hel")])
            self.tasks.append(asyncio.current_task())
            yield chunks_from_json([_chunk("lo")])
            self.tasks.append(asyncio.current_task())
            await asyncio.Event().wait()  # a backend that never answers again

    async def aclose(self) -> None:
        return None


class _Kept(Persistence):
    def __init__(self) -> None:
        self.final: dict[str, Any] | None = None

    async def started(self, plan: RunPlan) -> None:
        return None

    async def finished(self, plan: RunPlan, response: dict[str, Any]) -> None:
        self.final = response


def test_the_backends_timeout_fires_and_the_stream_stays_in_one_task() -> None:
    backend = _Stalling()
    persistence = _Kept()

    async def main() -> list[str]:
        req = validate_create({"model": "m", "input": "hi"})
        route = ModelRoute("m", backend, "m")
        plan = RunPlan(response=_initial_response(req, "resp_1", None), tenant=Tenant("t"), route=route,
                       admission=NOT_ADMITTED, params=req.model_dump(exclude_none=True), history=[],
                       input_items=[], toolset=Toolset.from_request([], BUILTIN, ToolSetup(Settings(), Tenant("t"))))
        run = ResponseRun(plan, persistence, 4, Telemetry.from_environment().run("m"))
        kinds = []
        async with asyncio.timeout(10):  # the test's own bound: the backend's fires long before
            async for batch in run.events():
                kinds += [e.type for e in batch]
        return kinds

    kinds = asyncio.run(main())
    assert len(set(backend.tasks)) == 1 and len(backend.tasks) == 4, backend.tasks
    assert kinds[0] == "response.created" and kinds[-1] == "response.failed"
    assert "response.output_text.delta" in kinds
    assert persistence.final is not None and persistence.final["status"] == "failed"
    assert persistence.final["output"][0]["content"][0]["text"] == "Hello"  # the partial output is kept
