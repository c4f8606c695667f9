"""The non-streamed reply: its head with the run's first events, its body the terminal event's Response."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import orjson
import pytest

from rejoinder.api.create_response import validate_create
from rejoinder.engine.events import Event, ResponseState
from rejoinder.engine.fold import fold
from rejoinder.engine.prepare import _initial_response


class _Run:
    """What ``fold`` reads of a ``ResponseRun``: its events, and the plan's response id."""

    def __init__(self, batches: list[list[Event]], log: list[str]):
        self.batches = batches
        self.log = log
        self.plan = SimpleNamespace(response_id="resp_1")

    async def events(self) -> AsyncIterator[list[Event]]:
        try:
            for batch in self.batches:
                yield batch
        finally:
            self.log.append("clean-up")


def _state() -> ResponseState:
    return ResponseState(_initial_response(validate_create({"model": "m", "input": "hi"}), "resp_1", None))


class _Reply:
    def __init__(self, log: list[str]):
        self.log = log
        self.bodies: list[bytes] = []

    async def head(self) -> None:
        self.log.append("head")

    async def body(self, data: bytes) -> None:
        self.log.append("body")
        self.bodies.append(data)


def _fold(run: _Run) -> list[bytes]:
    reply = _Reply(run.log)
    asyncio.run(fold(run, reply))  # type: ignore[arg-type]
    return reply.bodies


def test_the_reply_is_the_terminal_events_response_sent_before_the_clean_up() -> None:
    st, log = _state(), []
    batches = [[st.created(), st.in_progress()], [st.completed()]]
    [data] = _fold(_Run(batches, log))
    terminal = orjson.loads(batches[-1][0].data)
    assert orjson.loads(data) == terminal["response"] and terminal["type"] == "response.completed"
    assert batches[-1][0].data.endswith(data + b"}")  # the same bytes, not serialized again
    assert log == ["head", "body", "clean-up"]  # the head with the first events, the body before clean-up


def test_a_run_that_ends_without_a_terminal_event_is_an_error_not_a_silent_reply() -> None:
    st, log = _state(), []
    with pytest.raises(RuntimeError, match="without a terminal event"):
        _fold(_Run([[st.created(), st.in_progress()]], log))
    assert log == ["head", "clean-up"]
