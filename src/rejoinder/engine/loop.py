"""The agentic loop: infer -> emit items -> run server-side tools -> infer again.

It stops on a final message, a call the client answers (a client tool's call, an approval
request), the token limit or the iteration guard. What a call is and how it runs belongs to its
tool kind (tools/interface.py): the loop only asks the request's ``Toolset``. The response (with
its conversation append) is committed before the
terminal event is yielded.

Events travel in batches: a backend yields the chunks that arrived together, and every event they
make leaves in one list. Passing each of a turn's ~30 events one by one up four generators cost
more than making them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from rejoinder.engine import chunks as C
from rejoinder.engine.context import build_messages
from rejoinder.engine.events import Event, ResponseState
from rejoinder.engine.head import Acceptance, cancel_task, let_run
from rejoinder.engine.plan import RunPlan
from rejoinder.engine.upstream import stream_step
from rejoinder.errors import APIError, BackendError
from rejoinder.ids import new_id
from rejoinder.observability.hooks import RunObserver
from rejoinder.tools.interface import CallEnv, ModelCall

log = logging.getLogger(__name__)


@dataclass
class _Call:
    """One tool call the model is streaming."""

    index: int
    call_id: str
    name: str = ""
    arguments: str = ""
    handler: ModelCall | None = None  # once named: its tool's call (tools/interface.py)
    ignored: bool = False  # dropped: a second call under parallel_tool_calls=false, or over the budget
    over_budget: bool = False  # a server call dropped because max_tool_calls was reached
    closed: bool = False


@dataclass
class _Turn:
    """What one inference step produced."""

    finish_reason: str | None = None
    calls: list[ModelCall] = field(default_factory=list)
    over_budget: bool = False  # a server-side call was dropped because max_tool_calls was reached


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
        self.env = CallEnv(self.state, observer, plan.response_id)
        self._message: int | None = None  # output index of the open message item
        self._reasoning: int | None = None
        self._calls: dict[int, _Call] = {}
        self._open_call: _Call | None = None
        self._server_calls = 0  # server-side calls started; max_tool_calls bounds it
        self._max_server_calls: int | None = plan.params.get("max_tool_calls")
        self.cancel_requested = False  # set before cancelling the task that drives events()
        self._hold: asyncio.Event | None = None  # set once the start row is written (see events())
        self._accepted = Acceptance()  # the backend accepted the first step's request
        self.head_waits = False  # the head waits for that (a non-streamed reply: see _until_accepted)
        self._refusal: APIError | None = None

    # -- the event stream ------------------------------------------------------------------

    async def events(self) -> AsyncIterator[list[Event]]:
        """The response's events, in order, in non-empty batches."""
        st = self.state
        committed = False
        work = self._work()
        first: asyncio.Future[list[Event]] | None = None
        head: list[Event] = []
        try:
            if not self.plan.toolset.resumes:
                # The model's request leaves first: the head events are made, and the start row
                # written, while the upstream works. Its answer waits for them (``_hold``): if the
                # write fails, no event beyond the head exists, and the failure follows it in
                # sequence. (Calls resumed from the input run before the model and make events at
                # once: no head start for those.)
                self._hold = asyncio.Event()
                first = asyncio.ensure_future(anext(work))
                await let_run(first)
            head = [st.created(), st.in_progress(), *self.plan.toolset.head(self.env)]
            try:
                await self.persistence.started(self.plan)
            except BaseException:
                if first is not None:
                    await cancel_task(first)
                raise
            if self._hold is not None:
                self._hold.set()
            if self.head_waits and first is not None:
                await self._until_accepted(first)
            yield head
            head = []
            try:
                if first is not None:
                    try:
                        yield await first
                    except StopAsyncIteration:
                        pass
                async for batch in work:
                    yield batch
                reason = st.response.get("incomplete_details")
                terminal = st.incomplete(reason["reason"]) if reason else st.completed()
            except BackendError as exc:
                closing = self._close_open_items(status="incomplete")
                if closing:
                    yield closing
                terminal = st.failed(exc.code, exc.message)
            await self.persistence.finished(self.plan, st.response)
            committed = True
            yield [terminal]
        except asyncio.CancelledError:
            if not committed and st.response["status"] in ("in_progress", "queued"):
                if self.cancel_requested:
                    st.cancelled()
                else:
                    st.failed("server_error", "The response was interrupted before it finished.")
                await asyncio.shield(self.persistence.finished(self.plan, st.response))
            raise
        except Exception as exc:
            if committed or exc is self._refusal:
                raise
            log.exception("response %s failed", self.plan.response_id)
            terminal = st.failed("server_error", "The server had an error while processing the response.")
            await self.persistence.finished(self.plan, st.response)
            yield [*head, terminal]  # a stream always opens with response.created
        finally:
            if first is not None:
                await cancel_task(first)  # the run was cancelled while it waited
            await work.aclose()
            self.plan.toolset.close_soon()
            self.observer.finished(st.response["status"])

    async def _until_accepted(self, first: asyncio.Future[list[Event]]) -> None:
        """A refusal of the first step before acceptance: nothing left behind, the client's HTTP error."""
        refusal = await self._accepted.refusal(first)
        if refusal is not None:
            await self.persistence.discarded(self.plan)
            self._refusal = refusal.api_error()
            raise self._refusal

    async def _work(self) -> AsyncIterator[list[Event]]:
        """Everything between ``in_progress`` and the terminal event."""
        if not self.plan.generate:
            return
        async for batch in self._run_resumed():
            yield batch
        async for batch in self._iterate():
            yield batch

    # -- calls the input released, and running server calls ----------------------------------

    async def _run_resumed(self) -> AsyncIterator[list[Event]]:
        """Server calls this request's input released (approved) run before the model is asked again."""
        events, calls = self.plan.toolset.resumed(self.env)
        if calls:
            yield events
            self._server_calls += len(calls)
            async for batch in self._run_calls(calls):
                yield batch

    async def _run_calls(self, calls: list[ModelCall]) -> AsyncIterator[list[Event]]:
        """Run server calls concurrently; their events reach the client in output order, numbered in
        the order they leave (a later call that finished first made its events with higher
        numbers than it gets)."""
        if len(calls) == 1:
            async for batch in calls[0].run():
                yield batch
            return
        queues: list[asyncio.Queue[list[Event] | None]] = [asyncio.Queue() for _ in calls]

        async def pump(call: ModelCall, queue: asyncio.Queue[list[Event] | None]) -> None:
            try:
                async for batch in call.run():
                    queue.put_nowait(batch)
            finally:
                queue.put_nowait(None)

        tasks = [asyncio.ensure_future(pump(call, queue)) for call, queue in zip(calls, queues, strict=True)]
        seq = self.state.seq + 1  # the number of the next event to leave
        try:
            for task, queue in zip(tasks, queues, strict=True):
                while (batch := await queue.get()) is not None:
                    out = []
                    for event in batch:
                        out.append(event if event.sequence_number == seq else event.renumbered(seq))
                        seq += 1
                    yield out
                task.result()  # a call that raised
        finally:
            for task in tasks:
                await cancel_task(task)

    # -- inference steps ---------------------------------------------------------------------

    def _budget_left(self) -> bool:
        return self._max_server_calls is None or self._server_calls < self._max_server_calls

    async def _iterate(self) -> AsyncIterator[list[Event]]:
        for _ in range(self.max_iterations):
            turn = _Turn()
            async for batch in self._infer(turn):
                yield batch
            if turn.finish_reason == "length":
                self.state.response["incomplete_details"] = {"reason": "max_output_tokens"}
                return
            if turn.finish_reason == "content_filter":
                self.state.response["incomplete_details"] = {"reason": "content_filter"}
                return
            to_run = [c for c in turn.calls if c.on_server]
            if to_run:
                async for batch in self._run_calls(to_run):
                    yield batch
            if any(not c.on_server for c in turn.calls):
                return  # the client acts next: it runs its tools or answers the approvals
            if not to_run and not turn.over_budget:
                return  # a final answer
        self.state.response["incomplete_details"] = {"reason": "max_messages"}

    def _offered_tools(self) -> tuple[list[dict[str, Any]], Any]:
        """Tools and ``tool_choice`` for the next step.

        Once the server has made a call, a forced choice has been honoured: the model is free to
        answer (forcing again would loop until the iteration guard). Once ``max_tool_calls`` is
        reached, server-side tools are no longer offered.
        """
        toolset = self.plan.toolset
        choice, only = toolset.resolve_choice(self.plan.params.get("tool_choice"))
        if not self._budget_left():
            client = toolset.client_names()
            only = client if only is None else only & client
        if self._server_calls and choice not in (None, "none"):
            choice = None
        tools = toolset.chat_tools(only)
        return tools, (choice if tools else None)

    async def _infer(self, turn: _Turn) -> AsyncIterator[list[Event]]:
        plan = self.plan
        items = [*plan.history, *plan.input_items, *self.state.output]
        messages = build_messages(items, plan.params.get("instructions"), plan.toolset.aliases(),
                                  plan.toolset.item_types)
        tools, choice = self._offered_tools()
        self._calls = {}
        self._open_call = None
        with self.observer.backend_call(plan.route, plan.params, self.state.usage):
            async for chunks in stream_step(plan.route, plan.params, messages, tools, choice, plan.admission):
                self._accepted.set()
                if self._hold is not None:
                    await self._hold.wait()
                    self._hold = None
                events: list[Event] = []
                for delta in C.batch_deltas(chunks):
                    events += self._on_delta(delta, turn)
                if events:
                    self.observer.first_token()
                    yield events
        events = self._close_open_items(status="incomplete" if turn.finish_reason == "length" else "completed")
        for call in self._calls.values():
            if call.handler is None and not call.ignored:
                log.warning("response %s: dropped a tool call the model never named", plan.response_id)
            turn.over_budget = turn.over_budget or call.over_budget
        turn.calls = [c.handler for c in self._calls.values() if c.handler is not None]
        for handler in turn.calls:
            events += handler.end_of_step()
        if events:
            yield events

    def _on_delta(self, delta: C.Delta, turn: _Turn) -> list[Event]:
        st = self.state
        if (type(delta) is C.TextDelta and self._message is not None and self._reasoning is None
                and self._open_call is None and st.output[self._message]["content"][-1]["type"] == "output_text"):
            return [st.text_delta(self._message, delta.text, delta.logprobs)]  # the common case: more text
        if isinstance(delta, C.TextDelta | C.RefusalDelta):
            events = self._close_reasoning() + self._close_call()
            part = "output_text" if isinstance(delta, C.TextDelta) else "refusal"
            if self._message is None:
                self._message, started = st.message_start()
                events += started
                events.append(st.part_start(self._message, part))
            elif st.output[self._message]["content"][-1]["type"] != part:
                events += st.part_done(self._message)
                events.append(st.part_start(self._message, part))
            if isinstance(delta, C.TextDelta):
                events.append(st.text_delta(self._message, delta.text, delta.logprobs))
            else:
                events.append(st.refusal_delta(self._message, delta.text))
            return events
        if isinstance(delta, C.ReasoningDelta):
            events = self._close_message() + self._close_call()
            if self._reasoning is None:
                self._reasoning, started = st.reasoning_start()
                events += started
            events.append(st.reasoning_delta(self._reasoning, delta.text))
            return events
        if isinstance(delta, C.ToolCallDelta):
            return self._on_tool_delta(delta)
        if isinstance(delta, C.Finish):
            turn.finish_reason = delta.reason
        elif isinstance(delta, C.Usage):
            st.add_usage(delta.prompt_tokens, delta.completion_tokens, delta.cached_tokens, delta.reasoning_tokens)
        return []

    def _on_tool_delta(self, delta: C.ToolCallDelta) -> list[Event]:
        """Accumulate a call; its item starts once its name is known (the name decides its type)."""
        events = self._close_message() + self._close_reasoning()
        call = self._calls.get(delta.index)
        if call is None:
            events += self._close_call()
            call = _Call(index=delta.index, call_id=delta.call_id or new_id("call"))
            self._calls[delta.index] = call
            self._open_call = call
            if self.plan.params.get("parallel_tool_calls") is False and len(self._calls) > 1:
                call.ignored = True  # the backend ignored parallel_tool_calls=false: keep the first
        elif call.closed:
            log.warning("response %s: dropped a late fragment of tool call %s", self.plan.response_id,
                        call.call_id)
            return events
        named = call.handler is not None or call.ignored
        if delta.call_id and not named:
            call.call_id = delta.call_id
        if delta.name:
            call.name += delta.name
        call.arguments += delta.arguments
        if not named and call.name and (delta.arguments or delta.name is None):
            events += self._start_call(call)
        elif call.handler is not None and delta.arguments:
            events += call.handler.delta(delta.arguments)
        return events

    def _start_call(self, call: _Call) -> list[Event]:
        """Decide the item type once the name is known, before ``output_item.added``: the tool the
        name belongs to makes it (a name no tool of the request has is the fallback kind's)."""
        offer = self.plan.toolset.offer(call.name)
        if offer.on_server():
            if not self._budget_left():
                call.ignored = call.over_budget = True
                return []
            self._server_calls += 1
        call.handler, events = offer.begin(self.env, call.call_id)
        return events + call.handler.delta(call.arguments) if call.arguments else events

    def _close_call(self) -> list[Event]:
        call, self._open_call = self._open_call, None
        if call is None:
            return []
        call.closed = True
        events = self._start_call(call) if call.handler is None and not call.ignored and call.name else []
        return events + call.handler.done() if call.handler is not None else events

    def _close_message(self, status: str = "completed") -> list[Event]:
        index, self._message = self._message, None
        if index is None:
            return []
        return [*self.state.part_done(index), self.state.message_done(index, status)]

    def _close_reasoning(self) -> list[Event]:
        index, self._reasoning = self._reasoning, None
        return [] if index is None else self.state.reasoning_done(index)

    def _close_open_items(self, status: str) -> list[Event]:
        return self._close_reasoning() + self._close_message(status) + self._close_call()
