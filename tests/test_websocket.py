"""WebSocket mode on ``GET /v1/responses``: the SDK's own client (``client.responses.connect()``) and a
raw client (the ``websockets`` library), as Codex drives it: warm-up, pipelined creates, store=false
chains continued from the connection, errors that leave the socket usable, limits."""

from __future__ import annotations

import json
import threading
from typing import Any

import openai
import pytest
from openai.types.responses import ResponseSteerAcceptedEvent, ResponseSteerFailedEvent, ResponseSteerPendingEvent
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import MODEL
from tests.fake_upstream import calls, text
from tests.helpers import check_stream

CODEX_BETA = {"openai-beta": "responses_websockets=2026-02-06"}


def ws_url(server: Any) -> str:
    return server.url.replace("http://", "ws://") + "/v1/responses"


def open_socket(server: Any, headers: dict[str, str] | None = None) -> ClientConnection:
    return connect(ws_url(server), additional_headers=headers or {}, open_timeout=10, max_size=2**24)


def send(ws: ClientConnection, **event: Any) -> None:
    ws.send(json.dumps(event))


def recv(ws: ClientConnection) -> dict[str, Any]:
    message = ws.recv(timeout=30)
    assert isinstance(message, str), "every event is a text message"
    event: dict[str, Any] = json.loads(message)
    return event


def until_terminal(ws: ClientConnection) -> list[dict[str, Any]]:
    """Events of one response, up to its terminal event (or an error event)."""
    events = []
    while True:
        event = recv(ws)
        events.append(event)
        if event["type"] in ("response.completed", "response.failed", "response.incomplete", "error"):
            return events


def create(ws: ClientConnection, **body: Any) -> list[dict[str, Any]]:
    send(ws, type="response.create", model=MODEL, **body)
    return until_terminal(ws)


# -- the SDK's client -------------------------------------------------------------------------------


def test_sdk_connect_runs_many_responses_on_one_socket(server, upstream):
    upstream.queue(text("Hello there"), text("Second answer"))
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="test", max_retries=0)
    with client.responses.connect() as connection:
        finals = []
        for prompt in ("Hi", "Again"):
            connection.response.create(model=MODEL, input=prompt, store=False)
            events = []
            for event in connection:
                events.append(event.model_dump(mode="json", exclude_unset=True))
                if event.type == "response.completed":
                    break
            finals.append(check_stream(events))
    assert [f.output_text for f in finals] == ["Hello there", "Second answer"]
    assert finals[0].id != finals[1].id and finals[0].store is False


def test_sdk_events_are_the_sse_events(server, upstream, client):
    """The same engine, the same event sequence, one JSON message each."""
    upstream.queue(text("one two three"), text("one two three"))
    with client.responses.stream(model=MODEL, input="Count") as stream:
        sse = [e.type for e in stream]
    with client.responses.connect() as connection:
        connection.response.create(model=MODEL, input="Count")
        ws = []
        for event in connection:
            ws.append(event.type)
            if event.type == "response.completed":
                break
    assert ws == sse


# -- Codex's use: warm-up, continuation with only the new input, pipelining -----------------------


def test_codex_warm_up_then_turn_then_tool_output_only(server, upstream):
    upstream.queue(calls(("exec_command", {"cmd": "ls"})), text("Done: 2 files"))
    tools = [{"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {}},
              "strict": False}]
    with open_socket(server, CODEX_BETA) as ws:
        warm = create(ws, store=False, generate=False, tools=tools,
                      input=[{"type": "message", "role": "developer", "content": "You are Codex."}])
        assert [e["type"] for e in warm] == ["response.created", "response.in_progress", "response.completed"]
        done = warm[-1]["response"]
        assert done["output"] == [] and done["status"] == "completed"
        assert upstream.requests == []  # no model call

        turn = create(ws, store=False, tools=tools, previous_response_id=done["id"],
                      input=[{"type": "message", "role": "user", "content": "list files"}])
        final = check_stream(turn)
        call = final.output[-1]
        assert call.type == "function_call" and call.name == "exec_command"
        sent = upstream.requests[-1]["messages"]
        assert [(m["role"], m["content"]) for m in sent] == [("system", "You are Codex."), ("user", "list files")]

        follow = create(ws, store=False, tools=tools, previous_response_id=final.id,
                        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "a\nb"}])
        assert check_stream(follow).output_text == "Done: 2 files"
        sent = upstream.requests[-1]["messages"]
        assert sent[-2]["tool_calls"][0]["id"] == call.call_id  # the connection kept the call
        assert sent[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "a\nb"}
        assert "You are Codex." in json.dumps(sent)


def test_pipelined_creates_run_in_order_and_continue_each_other(server, upstream):
    gate = threading.Event()
    upstream.queue(text("first", gate=gate), text("second"))
    with open_socket(server) as ws:
        send(ws, type="response.create", model=MODEL, store=False, input="one")
        created = recv(ws)
        assert created["type"] == "response.created"
        # sent before the first response ended: it waits for it, then continues it
        send(ws, type="response.create", model=MODEL, store=False, input="two",
             previous_response_id=created["response"]["id"])
        gate.set()
        first = [created, *until_terminal(ws)]
        second = until_terminal(ws)
    assert check_stream(first).output_text == "first"
    assert check_stream(second).output_text == "second"
    assert [m["content"] for m in upstream.requests[1]["messages"]] == ["one", "first", "two"]


def test_lanes_are_fifo_each_and_echo_their_stream_id(server, upstream):
    upstream.queue(text("a1"), text("a2"))
    with open_socket(server) as ws:
        send(ws, type="response.create", model=MODEL, input="x", stream_id="lane-a")
        send(ws, type="response.create", model=MODEL, input="y", stream_id="lane-a")
        events = until_terminal(ws) + until_terminal(ws)
    assert {e.get("stream_id") for e in events} == {"lane-a"}
    finals = [e["response"] for e in events if e["type"] == "response.completed"]
    assert len(finals) == 2 and finals[0]["created_at"] <= finals[1]["created_at"]


def test_stored_response_continues_on_another_socket(server, upstream):
    """store=true chains come from the store: any socket, any replica, can continue them."""
    with open_socket(server) as ws:
        first = check_stream(create(ws, input="Remember 42"))
    with open_socket(server) as ws:
        second = check_stream(create(ws, input="What number?", previous_response_id=first.id))
    assert second.status == "completed"
    assert [m["content"] for m in upstream.requests[-1]["messages"]][:2] == ["Remember 42", "echo: Remember 42"]


# -- errors: one error event each, the socket stays usable ----------------------------------------


@pytest.mark.parametrize(("raw", "code", "param"), [
    ("{not json", "invalid_json", None),
    ('{"type": "response.bogus"}', "invalid_value", "type"),
    ('{"model": "x"}', "missing_required_parameter", "type"),
    (json.dumps({"type": "response.create", "model": "no-such-model", "input": "hi"}), "model_not_found", "model"),
    (json.dumps({"type": "response.create", "model": MODEL, "input": "hi", "temprature": 1}),
     "unknown_parameter", "temprature"),
    (json.dumps({"type": "response.create", "model": MODEL, "input": "hi", "background": True}),
     "unsupported_parameter", "background"),
    (json.dumps({"type": "response.create", "model": MODEL, "input": "hi", "previous_response_id": "resp_nope"}),
     "previous_response_not_found", "previous_response_id"),
])
def test_bad_event_gets_one_error_and_the_socket_stays_usable(server, upstream, raw, code, param):
    with open_socket(server) as ws:
        ws.send(raw)
        error = recv(ws)
        assert error["type"] == "error", error
        assert error["error"]["type"] == "invalid_request_error"
        assert (error["error"]["code"], error["error"]["param"]) == (code, param), error
        assert error["status"] in (400, 404)
        # exactly one: the next thing on the socket belongs to the next create
        assert check_stream(create(ws, input="still here")).status == "completed"


def test_error_event_parses_as_the_sdk_error(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="test", max_retries=0)
    with client.responses.connect() as connection:
        connection.response.create(model="no-such-model", input="hi")
        event = connection.recv()
    assert event.type == "error"
    assert event.error.type == "invalid_request_error" and event.error.code == "model_not_found"


def test_failed_continuation_evicts_the_cached_response(server, upstream):
    upstream.queue(text("base"), text("x", status=500), text("unused"))
    with open_socket(server) as ws:
        base = check_stream(create(ws, store=False, input="start"))
        failed = create(ws, store=False, input="go on", previous_response_id=base.id)
        assert failed[-1]["type"] == "response.failed"
        again = create(ws, store=False, input="go on", previous_response_id=base.id)
    assert again[-1]["type"] == "error"
    assert again[-1]["error"]["code"] == "previous_response_not_found"


def test_store_false_responses_do_not_outlive_their_socket(server, upstream):
    with open_socket(server) as ws:
        base = check_stream(create(ws, store=False, input="start"))
    with open_socket(server) as ws:
        again = create(ws, store=False, input="more", previous_response_id=base.id)
    assert again[-1]["error"]["code"] == "previous_response_not_found"


# -- auth and limits ------------------------------------------------------------------------------


def test_upgrade_needs_a_valid_key_and_scopes_every_event_to_its_owner(make_server, upstream):
    server = make_server(api_keys={"key-a": "alice", "key-b": "bob"})
    with pytest.raises(InvalidStatus) as refused:
        open_socket(server, {"authorization": "Bearer wrong"})
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["error"]["code"] == "invalid_api_key"
    with open_socket(server, {"authorization": "Bearer key-a"}) as ws:
        mine = check_stream(create(ws, input="secret"))
    with open_socket(server, {"authorization": "Bearer key-b"}) as ws:
        theirs = create(ws, input="peek", previous_response_id=mine.id)
    assert theirs[-1]["type"] == "error" and theirs[-1]["error"]["code"] == "previous_response_not_found"


def test_message_size_and_queue_limits(make_server, upstream):
    server = make_server(websocket={"max_message_bytes": 2048, "max_queued_creates": 1})
    gate = threading.Event()
    upstream.queue(text("slow", gate=gate))
    with open_socket(server) as ws:
        ws.send(json.dumps({"type": "response.create", "model": MODEL, "input": "x" * 4096}))
        assert recv(ws)["error"]["code"] == "message_too_large"
        send(ws, type="response.create", model=MODEL, input="runs")
        assert [recv(ws)["type"] for _ in range(2)] == ["response.created", "response.in_progress"]
        send(ws, type="response.create", model=MODEL, input="waits")
        send(ws, type="response.create", model=MODEL, input="refused")
        refused = recv(ws)  # the first response waits on its model: nothing else is on the socket
        assert refused["type"] == "error" and refused["status"] == 429
        assert refused["error"]["code"] == "rate_limit_exceeded"
        gate.set()
        assert until_terminal(ws)[-1]["type"] == "response.completed"
        assert until_terminal(ws)[-1]["type"] == "response.completed"


def test_idle_socket_is_closed(make_server):
    server = make_server(websocket={"idle_timeout": 0.3})
    with open_socket(server) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


# -- what Codex 0.171 really sent ---------------------------------------------------------------------


def test_codex_0171_socket_turn_as_captured(server, upstream):
    """Codex's own two events (fixtures/codex_websocket_turn.json), as sent (its custom apply_patch,
    tool_search and web_search tools too): a warm-up, then the turn naming it."""
    from pathlib import Path

    captured = json.loads((Path(__file__).parent / "fixtures" / "codex_websocket_turn.json").read_text())["events"]
    upstream.queue(text("Hi!"))
    with open_socket(server, CODEX_BETA) as ws:
        warm_up, turn = ({**e, "model": MODEL} for e in captured)
        assert warm_up["generate"] is False and turn["previous_response_id"]
        ws.send(json.dumps(warm_up))
        first = until_terminal(ws)
        assert first[-1]["type"] == "response.completed" and first[-1]["response"]["output"] == []
        ws.send(json.dumps({**turn, "previous_response_id": first[-1]["response"]["id"]}))
        final = check_stream(until_terminal(ws))
    assert final.output_text == "Hi!" and final.store is False
    assert len(upstream.requests) == 1  # the warm-up made no model call
    roles = [m["role"] for m in upstream.requests[0]["messages"]]
    assert roles == ["system", "system", "user", "user"]  # the warm-up's developer message, then the turn's input


def test_outbox_is_bounded_and_gives_up_on_a_reader_that_does_not_read():
    """Back-pressure: a full outbox makes the writer wait (the run waits with it); one that stays
    full for send_timeout is closed (the socket then closes with 1013)."""
    import asyncio

    from rejoinder.http.ws_route import Outbox, SlowReader

    async def scenario() -> None:
        box = Outbox(max_bytes=10, timeout=0.2)
        await box.put("x" * 8)
        waiting = asyncio.ensure_future(box.put("y" * 8))  # over the bound: waits for the reader
        await asyncio.sleep(0)
        assert not waiting.done()
        assert await box.get() == "x" * 8  # the reader takes one: the writer goes on
        await waiting
        with pytest.raises(SlowReader):
            await box.put("z" * 8)  # nobody reads for 0.2 s
        assert box.closed and await box.get() == "y" * 8 and await box.get() is None

    asyncio.run(scenario())


# -- response.steer -------------------------------------------------------------------------------


def test_steer_becomes_the_successor_of_a_finished_answer(server, upstream):
    gate = threading.Event()
    upstream.queue(text("first answer", gate=gate), text("steered answer"))
    with open_socket(server) as ws:
        send(ws, type="response.create", model=MODEL, input="Write a poem", store=False)
        target = recv(ws)["response"]["id"]
        send(ws, type="response.steer", previous_response_id=target, input="Make it about the sea")
        events = []
        while not any(e["type"] == "response.steer.accepted" for e in events):
            events.append(recv(ws))
        accepted = next(e for e in events if e["type"] == "response.steer.accepted")
        assert accepted["steer"]["previous_response_id"] == target and accepted["steer"]["id"]
        ResponseSteerAcceptedEvent.model_validate(accepted, strict=True)
        gate.set()
        first = until_terminal(ws)
        successor = until_terminal(ws)
    assert first[-1]["response"]["output"][0]["content"][0]["text"] == "first answer"
    final = check_stream(successor)
    assert final.previous_response_id == target and final.output_text == "steered answer"
    sent = [m["content"] for m in upstream.requests[-1]["messages"]]
    assert sent == ["Write a poem", "first answer", "Make it about the sea"]


def test_steer_waits_for_the_tool_output_then_follows_it(server, upstream):
    gate = threading.Event()
    upstream.queue(calls(("lookup", {"q": "x"}), gate=gate), text("done"))
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}
    with open_socket(server) as ws:
        send(ws, type="response.create", model=MODEL, input="Look it up", tools=[tool], store=False)
        target = recv(ws)["response"]["id"]
        send(ws, type="response.steer", previous_response_id=target,
             input=[{"type": "message", "role": "user", "content": "also check y"}])
        events = []  # the model's call is held until the steer is accepted: it must reach a running response
        while not events or events[-1]["type"] != "response.steer.accepted":
            events.append(recv(ws))
            assert events[-1]["type"] not in ("response.completed", "response.failed", "error"), events[-1]
        gate.set()
        events += until_terminal(ws)
        pending = recv(ws)
        assert pending["type"] == "response.steer.pending" and pending["reason"] == "waiting_for_required_input"
        ResponseSteerPendingEvent.model_validate(pending)
        call = events[-1]["response"]["output"][-1]
        assert pending["required_input"] == [{"type": "function_call_output", "call_id": call["call_id"],
                                              "name": "lookup"}]
        follow = create(ws, store=False, tools=[tool], previous_response_id=target,
                        input=[{"type": "function_call_output", "call_id": call["call_id"], "output": "42"}])
    assert check_stream(follow).output_text == "done"
    sent = upstream.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]  # the steer after the result
    assert sent[-1]["content"] == "also check y"


@pytest.mark.parametrize(("steer", "code"), [
    ({"previous_response_id": "resp_unknown", "input": "hi"}, "response_not_found"),
    ({"previous_response_id": "resp_unknown", "input": [{"role": "assistant", "content": "x"}]}, "invalid_input"),
    ({"previous_response_id": "resp_unknown", "input": ""}, "invalid_input"),
])
def test_steer_refused(server, steer, code):
    with open_socket(server) as ws:
        send(ws, type="response.steer", **steer)
        failed = recv(ws)
        assert failed["type"] == "response.steer.failed" and failed["error"]["code"] == code
        if code != "invalid_input":  # an invalid input, returned as given, cannot match the SDK's input type
            ResponseSteerFailedEvent.model_validate(failed)
        assert failed["error"]["type"] == "invalid_request_error"
        assert check_stream(create(ws, input="still usable")).status == "completed"


def test_conversation_over_the_socket(server, upstream, client):
    conversation = client.conversations.create()
    upstream.queue(text("Noted."), text("It is 7."))
    with open_socket(server) as ws:
        check_stream(create(ws, input="The number is 7.", conversation=conversation.id))
        check_stream(create(ws, input="What number?", conversation=conversation.id))
    assert [m["content"] for m in upstream.requests[-1]["messages"]] == ["The number is 7.", "Noted.", "What number?"]
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [i.type for i in items] == ["message"] * 4


def test_async_sdk_client_pipelines_two_creates(server, upstream):
    """The SDK's async connection: both creates sent at once, answered in order on one socket."""
    import asyncio

    upstream.queue(text("one"), text("two"))

    async def run() -> list[str]:
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="test", max_retries=0)
        async with client.responses.connect() as connection:
            await connection.response.create(model=MODEL, input="first", store=False)
            await connection.response.create(model=MODEL, input="second", store=False)
            done: list[str] = []
            async for event in connection:
                if event.type == "response.completed":
                    done.append(event.response.output_text)
                    if len(done) == 2:
                        return done
        return []

    assert asyncio.run(run()) == ["one", "two"]
