"""One response's lifecycle: its head, the loop of inference steps and tool calls, its commit.

infer -> emit items -> run server-side tools -> infer again. It stops on a final message, a call
the client answers (a client tool's call, an approval request), the token limit or the iteration
guard. The response (with its conversation append) is committed before the terminal event is
yielded. Reading a step's deltas is ``engine/step.py``'s; what the model is offered, the tool call
budget and running server calls are ``engine/tool_policy.py``'s; what a call is and how it runs
belongs to its tool kind (tools/interface.py).

The work between the head and the terminal event runs in one task of its own from start to end:
the backend's stream (and its ``asyncio.timeout``) lives in the task that entered it. Its batches
reach the event stream through a queue. Events travel in batches: a backend yields the chunks that
arrived together, and every event they make leaves in one list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from rejoinder.backends.refusal import BackendRefusal
from rejoinder.engine import chunks as C
from rejoinder.engine.compaction import view
from rejoinder.engine.context import build_messages
from rejoinder.engine.events import Event, ResponseState
from rejoinder.engine.head import Acceptance, cancel_task, let_run
from rejoinder.engine.plan import RunPlan
from rejoinder.engine.reasoning import ThinkSplitter, reasoning_output
from rejoinder.engine.step import StepReader, Turn
from rejoinder.engine.tool_policy import ToolPolicy
from rejoinder.engine.upstream import stream_step
from rejoinder.errors import APIError, BackendError
from rejoinder.observability.hooks import RunObserver
from rejoinder.observability.logs import for_request
from rejoinder.tools.interface import CallEnv

log = logging.getLogger(__name__)

_END = object()


class Persistence:
    """Where a run commits its state; the HTTP layer provides the store-backed one."""

    async def started(self, plan: RunPlan) -> None: ...

    async def finished(self, plan: RunPlan, response: dict[str, Any]) -> None: ...

    async def discarded(self, plan: RunPlan) -> None:
        """Refused before it began, the run is the client's HTTP error: what ``started`` stored goes."""


class ResponseRun:
    """One response: its event stream, and the loop of inference steps and tool calls behind it."""

    def __init__(self, plan: RunPlan, persistence: Persistence, max_iterations: int, observer: RunObserver):
        self.plan = plan
        self.persistence = persistence
        self.max_iterations = max_iterations
        self.observer = observer  # metrics and spans: first token, backend and tool calls, the end
        self.state = ResponseState(plan.response)
        self.state.include = frozenset(plan.params.get("include") or ())
        self.log = for_request(log, plan.request_id)
        self.env = CallEnv(self.state, observer, plan.response_id, self.log)
        self.policy = ToolPolicy(plan.toolset, plan.params, self.env)
        self._step: StepReader | None = None  # the step being read
        self._retry: list[dict[str, Any]] = []  # chat messages for the next step only (a refused call)
        self._retry_choice: dict[str, Any] | None = None  # and that step's forced tool
        self.cancel_requested = False  # set before cancelling the task that drives events()
        self._hold: asyncio.Event | None = None  # set once the start row is written (see events())
        self._accepted = Acceptance()  # the backend accepted the first step's request
        self.head_waits = False  # the head waits for that (a non-streamed reply: see _until_accepted)
        self._refusal: APIError | None = None
        # Where the work's batches go instead of through ``events()``, for a driver that would only
        # forward them (SSE's queue) or drop them (the folded reply): a task switch less per batch.
        # ``events()`` then yields the head (and the terminal event when ``on_terminal`` is set).
        self.sink: Callable[[list[Event]], None] | None = None
        # Awaited from the work's task with the terminal event, right after the commit (a folded
        # reply's body): no task switch between the last chunk and the reply.
        self.on_terminal: Callable[[Event], Awaitable[None]] | None = None
        self._committed = False

    # -- the event stream ------------------------------------------------------------------

    async def events(self) -> AsyncGenerator[list[Event], None]:
        """The response's events, in order, in non-empty batches."""
        st = self.state
        queue: asyncio.Queue[Any] = asyncio.Queue()
        worker: asyncio.Task[None] | None = None
        head: list[Event] = []
        try:
            if not self.plan.toolset.resumes:
                # The model's request leaves first: the head events are made, and the start row
                # written, while the upstream works. Its answer waits for them (``_hold``): if the
                # write fails, no event beyond the head exists, and the failure follows it in
                # sequence. (Calls resumed from the input run before the model and make events at
                # once: no head start for those.)
                self._hold = asyncio.Event()
                worker = asyncio.ensure_future(self._drive(queue))
                await let_run(worker)
            head = [st.created(), st.in_progress(), *self.plan.toolset.head(self.env)]
            await self.persistence.started(self.plan)
            if self._hold is not None:
                self._hold.set()
            if self.head_waits and worker is not None:
                await self._until_accepted(worker)
            yield head
            head = []
            if worker is None:
                worker = asyncio.ensure_future(self._drive(queue))
            while (batch := await queue.get()) is not _END:
                yield batch  # ... the terminal event last, once committed (``_drive``)
            await worker  # the work's own exception, if it ended with one
        except asyncio.CancelledError:
            if worker is not None:
                await cancel_task(worker)  # the state stops changing before it is stored
            if not self._committed and st.response["status"] in ("in_progress", "queued"):
                if self.cancel_requested:
                    st.cancelled()
                else:
                    st.failed("server_error", "The response was interrupted before it finished.")
                await asyncio.shield(self.persistence.finished(self.plan, st.response))
            raise
        except Exception as exc:
            if worker is not None:
                await cancel_task(worker)
            if self._committed or exc is self._refusal:
                raise
            self.log.exception("response %s failed", self.plan.response_id)
            terminal = st.failed("server_error", "The server had an error while processing the response.")
            await self.persistence.finished(self.plan, st.response)
            yield [*head, terminal]  # a stream always opens with response.created
        finally:
            if worker is not None:
                await cancel_task(worker)  # the client stopped reading: the work stops too
            self.plan.toolset.close_soon()
            self.observer.finished(st.response["status"])

    async def _drive(self, queue: asyncio.Queue[Any]) -> None:
        """Run the work in this task, from its first step to its commit, handing its batches on;
        the terminal event follows the commit."""
        st = self.state
        push = self.sink or queue.put_nowait
        try:
            try:
                async for batch in self._work():
                    push(batch)
                if self._hold is not None:  # a run with no model call: the head is made and stored first
                    await self._hold.wait()
                reason = st.response.get("incomplete_details")
                terminal = st.incomplete(reason["reason"]) if reason else st.completed()
            except BackendError as exc:
                if self.head_waits and not self._accepted.accepted and isinstance(exc, BackendRefusal):
                    raise  # refused before acceptance: the client's HTTP error (``_until_accepted``)
                if self._hold is not None:
                    await self._hold.wait()
                closing = self._step.close_open_items(status="incomplete") if self._step is not None else []
                if closing:
                    push(closing)
                terminal = st.failed(exc.code, exc.message)
            await self.persistence.finished(self.plan, st.response)
            self._committed = True
            if self.sink is not None and self.on_terminal is None:
                self.sink([terminal])  # straight to the client, like the batches before it
            else:
                queue.put_nowait([terminal])
            if self.on_terminal is not None:
                await self.on_terminal(terminal)
        finally:
            queue.put_nowait(_END)

    async def _until_accepted(self, worker: asyncio.Future[None]) -> None:
        """A refusal of the first step before acceptance: nothing left behind, the client's HTTP error."""
        refusal = await self._accepted.refusal(worker)
        if refusal is not None:
            await self.persistence.discarded(self.plan)
            self._refusal = refusal.api_error()
            raise self._refusal

    async def _work(self) -> AsyncIterator[list[Event]]:
        """Everything between ``in_progress`` and the terminal event."""
        if not self.plan.generate:
            return
        compactor = self.plan.compactor
        if compactor is not None and await compactor.due(self.plan):
            if self._hold is not None:  # the head (created, in_progress) is numbered first
                await self._hold.wait()
            async for batch in compactor.events(self.state, self.plan):
                yield batch
        async for batch in self.policy.run_resumed():
            yield batch
        async for batch in self._iterate():
            yield batch

    # -- inference steps ---------------------------------------------------------------------

    async def _iterate(self) -> AsyncIterator[list[Event]]:
        for _ in range(self.max_iterations):
            turn = Turn()
            async for batch in self._infer(turn):
                yield batch
            if turn.finish_reason == "length":
                self.state.response["incomplete_details"] = {"reason": "max_output_tokens"}
                return
            if turn.finish_reason == "content_filter":
                self.state.response["incomplete_details"] = {"reason": "content_filter"}
                return
            # calls refused before they reached the client (ModelCall.retry_messages), for the next step only
            self._retry = [m for c in turn.calls for m in c.retry_messages()]
            self._retry_choice = next((r for c in turn.calls if (r := c.retry_choice()) is not None), None)
            to_run = [c for c in turn.calls if c.on_server]
            if to_run:
                async for batch in self.policy.run(to_run):
                    yield batch
            if any(not c.on_server for c in turn.calls):
                return  # the client acts next: it runs its tools or answers the approvals
            if not to_run and not turn.over_budget:
                return  # a final answer
        self.state.response["incomplete_details"] = {"reason": "max_messages"}

    async def _infer(self, turn: Turn) -> AsyncIterator[list[Event]]:
        plan = self.plan
        items = view([*plan.history, *plan.input_items, *self.state.output], plan.summaries)
        messages = build_messages(items, plan.params.get("instructions"), plan.toolset.aliases(),
                                  plan.toolset.item_types, plan.unsealed,
                                  (plan.params.get("reasoning") or {}).get("context")) + self._retry
        tools, choice = self.policy.offered()
        if self._retry_choice is not None and tools:
            choice = self._retry_choice
        step = self._step = StepReader(self.state, self.policy, plan.response_id, turn,
                                       reasoning_output(plan.params, plan.sealing, plan.tenant))
        think = plan.route.think_tags
        splitter = ThinkSplitter(starts_open=think == "open") if think != "off" else None
        with self.observer.backend_call(plan.route, plan.params, self.state.usage):
            async for chunks in stream_step(plan.route, plan.params, messages, tools, choice, plan.admission):
                self._accepted.set()
                if self._hold is not None:
                    await self._hold.wait()
                    self._hold = None
                events: list[Event] = []
                for delta in C.batch_deltas(chunks):
                    if splitter is None:
                        events += step.on_delta(delta)
                    else:
                        for part in splitter.feed(delta):
                            events += step.on_delta(part)
                if events:
                    self.observer.first_token()
                    yield events
        events = [e for part in (splitter.flush() if splitter else ()) for e in step.on_delta(part)]
        events += step.finish()
        self._step = None
        if events:
            yield events
