"""The agentic loop: infer -> emit items -> run server-side tools -> infer again.

It stops on a final message, a client-side function call, an approval request, the token limit
or the iteration guard. The response (with its conversation append) is committed before the
terminal event is yielded.

Events travel in batches: a backend yields the chunks that arrived together, and every event they
make leaves in one list. Passing each of a turn's ~30 events one by one up four generators cost
more than making them.
"""

from __future__ import annotations

import asyncio
import json
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
from rejoinder.tools.mcp_client import McpResult
from rejoinder.tools.toolset import ServerTool, resolve_tool_choice

log = logging.getLogger(__name__)


@dataclass
class _Call:
    """One tool call the model is streaming."""

    index: int
    call_id: str
    name: str = ""
    arguments: str = ""
    kind: str = ""  # "" until named, then "function" | "mcp" | "approval" | "ignored"
    output_index: int = -1
    tool: ServerTool | None = None
    closed: bool = False


@dataclass
class _Turn:
    """What one inference step produced."""

    finish_reason: str | None = None
    calls: list[_Call] = field(default_factory=list)
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
            if not self.plan.approved:
                # The model's request leaves first: the head events are made, and the start row
                # written, while the upstream works. Its answer waits for them (``_hold``): if the
                # write fails, no event beyond the head exists, and the failure follows it in
                # sequence. (Approved MCP calls run before the model and make events at once: no
                # head start for those.)
                self._hold = asyncio.Event()
                first = asyncio.ensure_future(anext(work))
                await let_run(first)
            head = [st.created(), st.in_progress(), *self._listings()]
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
            self.plan.sessions.close_soon()
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
        async for batch in self._run_approved():
            yield batch
        async for batch in self._iterate():
            yield batch

    # -- MCP tool listings and approved calls -------------------------------------------------

    def _listings(self) -> list[Event]:
        events: list[Event] = []
        for label, tools in self.plan.fresh_listings.items():
            index, started = self.state.mcp_list_tools_start(label)
            events.extend(started)
            events.extend(self.state.mcp_list_tools_done(index, tools, None))
        return events

    async def _run_approved(self) -> AsyncIterator[list[Event]]:
        """Calls the client approved in this request's input run before the model is asked again."""
        st = self.state
        to_run: list[tuple[int, ServerTool | None]] = []
        events: list[Event] = []
        for request in self.plan.approved:
            label, name = request["server_label"], request["name"]
            index, added = st.mcp_call_start(label, name, approval_request_id=request["id"])
            events.append(added)
            if request.get("arguments"):
                events.append(st.mcp_call_delta(index, request["arguments"]))
            events += st.mcp_call_arguments_done(index)
            to_run.append((index, self.plan.toolset.find_server_tool(label, name)))
        if to_run:
            yield events
            self._server_calls += len(to_run)
            yield await self._run_mcp_calls(to_run)

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
            to_run = [(c.output_index, c.tool) for c in turn.calls if c.kind == "mcp"]
            if to_run:
                yield await self._run_mcp_calls(to_run)
            if any(c.kind in ("function", "approval") for c in turn.calls):
                return  # the client acts next: it runs its functions or answers the approvals
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
        choice, only = resolve_tool_choice(self.plan.params.get("tool_choice"), toolset)
        if not self._budget_left():
            functions = set(toolset.functions)
            only = functions if only is None else only & functions
        if self._server_calls and choice not in (None, "none"):
            choice = None
        tools = toolset.chat_tools(only)
        return tools, (choice if tools else None)

    async def _infer(self, turn: _Turn) -> AsyncIterator[list[Event]]:
        plan = self.plan
        items = [*plan.history, *plan.input_items, *self.state.output]
        messages = build_messages(items, plan.params.get("instructions"), plan.toolset.model_names())
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
            if call.kind == "":
                log.warning("response %s: dropped a tool call the model never named", plan.response_id)
            elif call.kind == "ignored" and call.tool is not None:
                turn.over_budget = True
        turn.calls = [c for c in self._calls.values() if c.kind not in ("", "ignored")]
        for call in turn.calls:
            if call.kind == "approval" and call.tool is not None:
                events += self.state.mcp_approval_request(call.tool.server.server_label, call.tool.name,
                                                          call.arguments or "{}")
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
                call.kind = "ignored"  # the backend ignored parallel_tool_calls=false: keep the first
        elif call.closed:
            log.warning("response %s: dropped a late fragment of tool call %s", self.plan.response_id,
                        call.call_id)
            return events
        if delta.call_id and call.kind == "":
            call.call_id = delta.call_id
        if delta.name:
            call.name += delta.name
        call.arguments += delta.arguments
        if call.kind == "" and call.name and (delta.arguments or delta.name is None):
            events += self._start_call(call)
        elif call.kind and delta.arguments:
            events += self._call_delta(call, delta.arguments)
        return events

    def _start_call(self, call: _Call) -> list[Event]:
        """Decide the item type once the name is known, before ``output_item.added``.

        A name that is no MCP tool of the request (a function tool, or one the model invented)
        is a client-side ``function_call``.
        """
        st = self.state
        tool = self.plan.toolset.server_tools.get(call.name)
        if tool is not None:
            call.tool = tool
            if tool.needs_approval():
                call.kind = "approval"  # emitted as an approval request once complete
                return []
            if not self._budget_left():
                call.kind = "ignored"
                return []
            self._server_calls += 1
            call.kind = "mcp"
            call.output_index, added = st.mcp_call_start(tool.server.server_label, tool.name)
        else:
            call.kind = "function"
            call.output_index, added = st.function_call_start(call.call_id, call.name)
            self.observer.tool_called("function")
        return [added, *self._call_delta(call, call.arguments)] if call.arguments else [added]

    def _call_delta(self, call: _Call, text: str) -> list[Event]:
        if call.kind == "function":
            return [self.state.function_call_delta(call.output_index, text)]
        if call.kind == "mcp":
            return [self.state.mcp_call_delta(call.output_index, text)]
        return []

    def _close_call(self) -> list[Event]:
        call, self._open_call = self._open_call, None
        if call is None:
            return []
        call.closed = True
        events = self._start_call(call) if call.kind == "" and call.name else []
        if call.kind in ("function", "mcp"):
            item = self.state.output[call.output_index]
            if not item["arguments"]:
                item["arguments"] = "{}"  # nothing arrived: an empty object, as the backend would need
            if call.kind == "function":
                return events + self.state.function_call_done(call.output_index)
            return events + self.state.mcp_call_arguments_done(call.output_index)
        return events

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

    # -- running MCP calls -------------------------------------------------------------------

    async def _call_mcp(self, tool: ServerTool | None, arguments: str, label: str) -> McpResult:
        if tool is None:
            return McpResult(None, {"type": "mcp_protocol_error", "code": -32602,
                                    "message": f"The tool is not offered by MCP server '{label}' in this request."})
        try:
            args = json.loads(arguments or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError:
            return McpResult(None, {"type": "mcp_protocol_error", "code": -32602,
                                    "message": "The tool arguments are not a valid JSON object."})
        with self.observer.tool_call("mcp", tool.name) as observed:
            result = await self.plan.sessions.call_tool(tool.server, tool.name, args)
            if result.error is not None:
                observed.failed(str(result.error.get("type", "error")))
        return result

    async def _run_mcp_calls(self, calls: list[tuple[int, ServerTool | None]]) -> list[Event]:
        """Run the calls (output index, tool) concurrently; report them in output order."""
        output = self.state.output
        results = await asyncio.gather(
            *(self._call_mcp(tool, output[index]["arguments"], output[index]["server_label"])
              for index, tool in calls)
        )
        events: list[Event] = []
        for (index, _), result in zip(calls, results, strict=True):
            events += self.state.mcp_call_done(index, result.output, result.error)
        return events
