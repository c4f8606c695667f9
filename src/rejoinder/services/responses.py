"""Creating and reading responses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from rejoinder.api.create_response import CreateResponse
from rejoinder.backends.registry import ModelRegistry
from rejoinder.config import Settings
from rejoinder.crypto.sealing import KeyRing
from rejoinder.engine.compaction import attach
from rejoinder.engine.events import Event, new_response_id
from rejoinder.engine.fold import Reply, fold
from rejoinder.engine.loop import Persistence, ResponseRun
from rejoinder.engine.plan import RunPlan
from rejoinder.engine.prepare import conversation_id_of, prepare
from rejoinder.errors import InvalidRequest
from rejoinder.observability.hooks import RunObserver, Telemetry
from rejoinder.request_context import RequestContext
from rejoinder.services.leases import LeaseKeeper, RunLease
from rejoinder.services.persistence import StorePersistence
from rejoinder.store.conversations import ConversationStore
from rejoinder.store.responses import ResponseStore
from rejoinder.tools.registry import BUILTIN, ToolKinds

log = logging.getLogger(__name__)

_DONE = object()


class ConversationLocked(InvalidRequest):
    def __init__(self) -> None:
        super().__init__(
            "Another process is currently operating on this conversation. Please retry in a few seconds.",
            param="conversation", code="conversation_locked",
        )


class ResponsesService:
    def __init__(self, settings: Settings, registry: ModelRegistry, responses: ResponseStore,
                 conversations: ConversationStore, leases: LeaseKeeper, telemetry: Telemetry,
                 tools: ToolKinds = BUILTIN):
        self.settings = settings
        self.registry = registry
        self.responses = responses
        self.conversations = conversations
        self.leases = leases
        self.telemetry = telemetry
        self.tools = tools  # the tool kinds this server serves
        self.sealing: KeyRing | None = None  # set by the app (http/app.py): seals and opens reasoning blobs
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self, req: CreateResponse, context: RequestContext, *,
                    chain: list[dict[str, Any]] | None = None, generate: bool = True) -> ResponseRun:
        """Take the conversation's lock, then prepare the run (all 4xx checks happen there).

        The lock comes first so the context is read after the previous turn committed: a turn
        that continues a tool call finds the call, and no turn answers a stale history. The run's
        lease (``lease_of``; none when it holds nothing: a store=false turn outside a
        conversation) is taken before the lock, which it renews, in the task that prepares the
        run; whoever runs it hands it on (``fold``, ``stream``, the background runner).
        ``chain`` and ``generate``: see ``prepare`` (a WebSocket's cached chain, its warm-ups).
        """
        observer = self.telemetry.run(req.model)  # time to first token counts from here
        response_id = new_response_id()
        conversation_id = conversation_id_of(req)
        lease = self.leases.open(response_id, conversation_id) if req.store or conversation_id else None
        try:
            if conversation_id:
                locked = await self.conversations.try_lock(conversation_id, context.tenant, response_id,
                                                           self.settings.lease_seconds)
                if not locked:
                    raise ConversationLocked()
            try:
                plan = await prepare(req, context, self.registry, self.responses, self.conversations,
                                     self.tools, self.settings, response_id, chain=chain, generate=generate,
                                     sealing=self.sealing)
                try:
                    attach(plan, self.sealing)  # a compaction blob that does not open is a 400 now
                except BaseException:
                    await plan.toolset.aclose()
                    raise
            except BaseException:
                if conversation_id:
                    await self.conversations.unlock(conversation_id, response_id)
                raise
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        return self.new_run(plan, StorePersistence(self.responses, self.conversations, lease), observer)

    def new_run(self, plan: RunPlan, persistence: Persistence, observer: RunObserver | None = None) -> ResponseRun:
        """The run of a prepared plan, reporting to this server's telemetry."""
        observer = observer or self.telemetry.run(plan.route.name)
        return ResponseRun(plan, persistence, self.settings.max_tool_iterations, observer)

    @staticmethod
    def lease_of(run: ResponseRun) -> RunLease | None:
        """The lease ``start`` took for ``run``."""
        persistence = run.persistence
        return persistence.lease if isinstance(persistence, StorePersistence) else None

    async def fold(self, run: ResponseRun, reply: Reply) -> None:
        """Run a response that is not streamed: ``reply`` gets its head once the backend accepted the
        request and its JSON once it is stored (see ``fold``).

        The run is a task of its own, so a client that hangs up does not abort the stored turn.
        ``reply`` is called from that task, the body right after the commit: handing the result
        back to the request's task first took two more passes of the event loop.
        """
        task = asyncio.ensure_future(fold(run, reply))
        self._track(task, run)
        await asyncio.shield(task)

    async def stream(self, req: CreateResponse, context: RequestContext) -> AsyncIterator[list[Event]]:
        """Events of a new response, in batches: each batch is every event ready when the client
        takes more, so a burst of upstream chunks leaves in one write instead of one per event.

        The run is driven by its own task, so a client that disconnects mid-stream leaves the
        response to finish and be stored consistently."""
        run = await self.start(req, context)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        listening = True

        def forward(batch: list[Event]) -> None:
            if listening:
                queue.put_nowait(batch)

        run.sink = forward  # the work's batches straight to the client's queue

        async def drive() -> None:
            try:
                async for batch in run.events():
                    if listening:
                        queue.put_nowait(batch)
            finally:
                queue.put_nowait(_DONE)

        task = asyncio.ensure_future(drive())
        self._track(task, run)

        async def batches() -> AsyncIterator[list[Event]]:
            nonlocal listening
            try:
                while True:
                    ready = [await queue.get()]
                    while not queue.empty():
                        ready.append(queue.get_nowait())
                    done = ready[-1] is _DONE  # always the last thing queued
                    if done:
                        ready.pop()
                    if ready:
                        yield ready[0] if len(ready) == 1 else [e for batch in ready for e in batch]
                    if done:
                        return
            finally:
                listening = False

        return batches()

    async def deliver(self, run: ResponseRun, sink: Callable[[list[Event]], Awaitable[None]]) -> None:
        """Drive ``run`` in a task of its own and await ``sink`` with each batch of its events, in
        order: a slow sink slows the run (back-pressure, no unbounded buffer). A sink that raises
        (its client left) gets nothing more, and the run goes on to its end and is stored; so it
        does when the caller is cancelled. Returns when the run has ended."""

        async def drive() -> None:
            listening = True
            async for batch in run.events():
                if listening:
                    try:
                        await sink(batch)
                    except Exception:
                        listening = False

        task = asyncio.ensure_future(drive())
        self._track(task, run)
        await asyncio.shield(task)

    def _track(self, task: asyncio.Task[Any], run: ResponseRun) -> None:
        """``task`` runs ``run`` from now on: it holds the run's lease, and shutdown waits for it."""
        lease = self.lease_of(run)
        if lease is not None:
            lease.drive(run, task)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown(self, grace: float = 10.0) -> None:
        """Let running responses finish briefly, then cancel them (they store themselves as failed)."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
