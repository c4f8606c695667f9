"""Reading one inference step: the backend's deltas become output items and their events.

A state machine over the step's open items: at most one message (its text or refusal parts), one
reasoning item and one tool call are open at a time, and a delta of another kind closes the open
one first. A tool call's item starts once its name is known, since the name decides its type
(the tool it belongs to makes it: ``ToolPolicy.begin``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rejoinder.engine import chunks as C
from rejoinder.engine.events import Event, ResponseState
from rejoinder.engine.reasoning import ReasoningOutput
from rejoinder.engine.tool_policy import ToolPolicy
from rejoinder.ids import new_id
from rejoinder.tools.interface import ModelCall, TextFilter


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
class Turn:
    """What one inference step produced."""

    finish_reason: str | None = None
    calls: list[ModelCall] = field(default_factory=list)
    over_budget: bool = False  # a server-side call was dropped because max_tool_calls was reached


class StepReader:
    """The items of one inference step, as its deltas arrive."""

    def __init__(self, state: ResponseState, policy: ToolPolicy, response_id: str, turn: Turn,
                 reasoning: ReasoningOutput | None = None):
        self.state = state
        self.reasoning = reasoning or ReasoningOutput()
        self._reasoning_chars = 0  # reasoning this step, for reasoning_tokens when the backend has none
        self.policy = policy
        self.response_id = response_id
        self.log = policy.env.log
        self.turn = turn
        self.single_call = policy.params.get("parallel_tool_calls") is False
        self._message: int | None = None  # output index of the open message item
        self._reasoning: int | None = None
        self._filter: TextFilter | None = None  # rewrites the open output_text part (citations)
        self._calls: dict[int, _Call] = {}
        self._open_call: _Call | None = None

    def on_delta(self, delta: C.Delta) -> list[Event]:
        st = self.state
        if (type(delta) is C.TextDelta and self._message is not None and self._reasoning is None
                and self._open_call is None and st.output[self._message]["content"][-1]["type"] == "output_text"):
            return self._text(delta.text, delta.logprobs)  # the common case: more text
        if isinstance(delta, C.TextDelta | C.RefusalDelta):
            events = self._close_reasoning() + self._close_call()
            part = "output_text" if isinstance(delta, C.TextDelta) else "refusal"
            if self._message is None:
                self._message, started = st.message_start()
                events += started
                events += self._part_start(part)
            elif st.output[self._message]["content"][-1]["type"] != part:
                events += self._part_done()
                events += self._part_start(part)
            if isinstance(delta, C.TextDelta):
                events += self._text(delta.text, delta.logprobs)
            else:
                events.append(st.refusal_delta(self._message, delta.text))
            return events
        if isinstance(delta, C.ReasoningDelta):
            events = self._close_message() + self._close_call()
            if self._reasoning is None:
                self._reasoning, started = st.reasoning_start()
                events += started
                if self.reasoning.summary:
                    events.append(st.summary_part_start(self._reasoning))
            self._reasoning_chars += len(delta.text)
            events.append(st.reasoning_delta(self._reasoning, delta.text))
            if self.reasoning.summary:
                events.append(st.summary_delta(self._reasoning, delta.text))
            return events
        if isinstance(delta, C.ToolCallDelta):
            return self._on_tool_delta(delta)
        if isinstance(delta, C.Finish):
            self.turn.finish_reason = delta.reason
        elif isinstance(delta, C.Usage):
            reasoning_tokens = delta.reasoning_tokens
            if not reasoning_tokens and self._reasoning_chars:  # the backend does not count them
                reasoning_tokens = min(delta.completion_tokens, -(-self._reasoning_chars // 4))
            st.add_usage(delta.prompt_tokens, delta.completion_tokens, delta.cached_tokens, reasoning_tokens)
        return []

    def finish(self) -> list[Event]:
        """The step's stream ended: open items close, calls are counted, and what waits for the end
        of the step (approval requests) is made."""
        turn = self.turn
        events = self.close_open_items(status="incomplete" if turn.finish_reason == "length" else "completed")
        for call in self._calls.values():
            if call.handler is None and not call.ignored:
                self.log.warning("response %s: dropped a tool call the model never named", self.response_id)
            turn.over_budget = turn.over_budget or call.over_budget
        turn.calls = [c.handler for c in self._calls.values() if c.handler is not None]
        for handler in turn.calls:
            events += handler.end_of_step()
        return events

    def close_open_items(self, status: str) -> list[Event]:
        return self._close_reasoning() + self._close_message(status) + self._close_call()

    # -- message text ------------------------------------------------------------------------

    def _part_start(self, part: str) -> list[Event]:
        assert self._message is not None
        if part == "output_text":
            self._filter = self.policy.toolset.text_filter()
        return [self.state.part_start(self._message, part)]

    def _text(self, text: str, logprobs: list[Any] | None) -> list[Event]:
        assert self._message is not None
        if self._filter is None:
            return [self.state.text_delta(self._message, text, logprobs)]
        clean, notes = self._filter.feed(text)
        return self._filtered(clean, notes, logprobs)

    def _filtered(self, clean: str, notes: list[dict[str, Any]], logprobs: list[Any] | None = None) -> list[Event]:
        assert self._message is not None
        events = [self.state.text_delta(self._message, clean, logprobs)] if clean else []
        return events + [self.state.annotation_added(self._message, note) for note in notes]

    def _part_done(self) -> list[Event]:
        assert self._message is not None
        events: list[Event] = []
        if self._filter is not None:
            events += self._filtered(*self._filter.flush())
            self._filter = None
        return events + self.state.part_done(self._message)

    def _close_message(self, status: str = "completed") -> list[Event]:
        if self._message is None:
            return []
        events = self._part_done()
        index, self._message = self._message, None
        return [*events, self.state.message_done(index, status)]

    def _close_reasoning(self) -> list[Event]:
        index, self._reasoning = self._reasoning, None
        if index is None:
            return []
        item = self.state.output[index]
        events = self.state.summary_part_done(index) if self.reasoning.summary else []
        if self.reasoning.seal is not None:
            item["encrypted_content"] = self.reasoning.seal(item["content"][0]["text"])
        return events + self.state.reasoning_done(index)

    # -- tool calls --------------------------------------------------------------------------

    def _on_tool_delta(self, delta: C.ToolCallDelta) -> list[Event]:
        """Accumulate a call; its item starts once its name is known (the name decides its type)."""
        events = self._close_message() + self._close_reasoning()
        call = self._calls.get(delta.index)
        if call is None:
            events += self._close_call()
            call = _Call(index=delta.index, call_id=delta.call_id or new_id("call"))
            self._calls[delta.index] = call
            self._open_call = call
            if self.single_call and len(self._calls) > 1:
                call.ignored = True  # the backend ignored parallel_tool_calls=false: keep the first
        elif call.closed:
            self.log.warning("response %s: dropped a late fragment of tool call %s", self.response_id,
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
        call.handler, events = self.policy.begin(call.name, call.call_id)
        if call.handler is None:
            call.ignored = call.over_budget = True
            return []
        return events + call.handler.delta(call.arguments) if call.arguments else events

    def _close_call(self) -> list[Event]:
        call, self._open_call = self._open_call, None
        if call is None:
            return []
        call.closed = True
        events = self._start_call(call) if call.handler is None and not call.ignored and call.name else []
        return events + call.handler.done() if call.handler is not None else events
