"""The run's tool policy: what each step offers the model, the ``max_tool_calls`` budget, and running
server calls (concurrently, their events in output order)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from rejoinder.engine.events import Event, ResponseState
from rejoinder.engine.head import cancel_task
from rejoinder.tools.interface import CallEnv, ModelCall
from rejoinder.tools.toolset import Toolset


class ToolPolicy:
    def __init__(self, toolset: Toolset, params: dict[str, Any], env: CallEnv):
        self.toolset = toolset
        self.params = params
        self.env = env
        self.server_calls = 0  # server-side calls started; max_tool_calls bounds it
        self.max_server_calls: int | None = params.get("max_tool_calls")

    @property
    def state(self) -> ResponseState:
        return self.env.state

    def budget_left(self) -> bool:
        return self.max_server_calls is None or self.server_calls < self.max_server_calls

    def offered(self) -> tuple[list[dict[str, Any]], Any]:
        """Tools and ``tool_choice`` for the next step.

        Once the server has made a call, a forced choice has been honoured: the model is free to
        answer (forcing again would loop until the iteration guard). Once ``max_tool_calls`` is
        reached, server-side tools are no longer offered.
        """
        toolset = self.toolset
        choice, only = toolset.resolve_choice(self.params.get("tool_choice"))
        if not self.budget_left():
            client = toolset.client_names()
            only = client if only is None else only & client
        if self.server_calls and choice not in (None, "none"):
            choice = None
        tools = toolset.chat_tools(only)
        return tools, (choice if tools else None)

    def begin(self, name: str, call_id: str) -> tuple[ModelCall | None, list[Event]]:
        """The model named a tool in a call: the tool the name belongs to starts its item (a name no
        tool of the request has is the fallback kind's). None: a server call over the budget."""
        offer = self.toolset.offer(name)
        if offer.on_server():
            if not self.budget_left():
                return None, []
            self.server_calls += 1
        return offer.begin(self.env, call_id)

    async def run_resumed(self) -> AsyncIterator[list[Event]]:
        """Server calls this request's input released (approved) run before the model is asked again."""
        events, calls = self.toolset.resumed(self.env)
        if calls:
            yield events
            self.server_calls += len(calls)
            async for batch in self.run(calls):
                yield batch

    async def run(self, calls: list[ModelCall]) -> AsyncIterator[list[Event]]:
        """Run server calls concurrently; their events reach the client in output order, numbered in
        the order they leave (a later call that finished first made its events with higher
        numbers than it gets)."""
        if len(calls) == 1:
            async for only in calls[0].run():
                yield only
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
                while (ready := await queue.get()) is not None:
                    out = []
                    for event in ready:
                        out.append(event if event.sequence_number == seq else event.renumbered(seq))
                        seq += 1
                    yield out
                task.result()  # a call that raised
        finally:
            for task in tasks:
                await cancel_task(task)
