"""Background responses on one server: queued -> polled, background + stream, cancel, stream resume."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import MODEL
from tests.fake_upstream import text


def wait_for(client: openai.OpenAI, response_id: str, statuses: tuple[str, ...], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        r = client.responses.retrieve(response_id)
        if r.status in statuses:
            return r
        assert time.monotonic() < deadline, f"{response_id} still {r.status}"
        time.sleep(0.05)


def test_background_returns_queued_then_completes(client, upstream):
    upstream.queue(text("done in the background"))
    r = client.responses.create(model=MODEL, input="hi", background=True)
    assert r.status == "queued"
    assert r.background is True
    final = wait_for(client, r.id, ("completed",))
    assert final.output_text == "done in the background"
    assert final.background is True


def test_background_stream_matches_openai(client, upstream):
    upstream.queue(text("one two three"))
    events = list(client.responses.create(model=MODEL, input="hi", background=True, stream=True))
    types = [e.type for e in events]
    assert types[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert events[0].response.status == "queued"
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "one two three"
    stored = client.responses.retrieve(events[0].response.id)
    assert stored.output[0].id == events[-1].response.output[0].id


def test_resume_replays_after_sequence_number(client, upstream):
    upstream.queue(text("alpha beta gamma delta"))
    full = list(client.responses.create(model=MODEL, input="hi", background=True, stream=True))
    response_id = full[0].response.id
    resumed = list(client.responses.retrieve(response_id, stream=True, starting_after=3))
    assert [e.sequence_number for e in resumed] == [e.sequence_number for e in full[4:]]
    assert [e.type for e in resumed] == [e.type for e in full[4:]]
    everything = list(client.responses.retrieve(response_id, stream=True))
    assert [e.type for e in everything] == [e.type for e in full]


def test_resume_follows_a_running_response(client, upstream):
    upstream.queue(text("slow words arrive one at a time here", delay=0.05))
    r = client.responses.create(model=MODEL, input="hi", background=True)
    events = list(client.responses.retrieve(r.id, stream=True, starting_after=1))
    assert events[0].sequence_number == 2
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "slow words arrive one at a time here"


def test_cancel_running_background_response(client, upstream):
    upstream.queue(text(" ".join(["word"] * 200), delay=0.05))
    r = client.responses.create(model=MODEL, input="hi", background=True)
    wait_for(client, r.id, ("in_progress",))
    cancelled = client.responses.cancel(r.id)
    assert cancelled.status == "cancelled"
    # the stream of a cancelled response ends (its run has stopped) without a terminal event
    events = list(client.responses.retrieve(r.id, stream=True))
    assert events[0].type == "response.created"
    assert all(e.type not in ("response.completed", "response.failed") for e in events)
    assert client.responses.retrieve(r.id).status == "cancelled"  # the stopped run did not overwrite it
    again = client.responses.cancel(r.id)  # idempotent
    assert again.status == "cancelled"


def test_cancel_queued_response_never_runs(make_server, upstream):
    server = make_server(background_workers=1)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    upstream.queue(text(" ".join(["busy"] * 100), delay=0.05), text("third"))
    busy = client.responses.create(model=MODEL, input="first", background=True)
    waiting = client.responses.create(model=MODEL, input="second", background=True)
    assert client.responses.retrieve(waiting.id).status == "queued"
    assert client.responses.cancel(waiting.id).status == "cancelled"
    client.responses.cancel(busy.id)
    # The one worker takes jobs in order: once a job queued after it has run, it had its chance.
    third = client.responses.create(model=MODEL, input="third", background=True)
    assert wait_for(client, third.id, ("completed",)).output_text == "third"
    assert client.responses.retrieve(waiting.id).status == "cancelled"
    sent = [r["messages"][-1]["content"] for r in upstream.requests]
    assert sent == ["first", "third"]  # the cancelled one never reached the model


def test_cancel_errors_match_openai(client, upstream):
    upstream.queue(text("sync"), text("bg"))
    sync = client.responses.create(model=MODEL, input="hi")
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.cancel(sync.id)
    assert err.value.body["message"] == "Cannot cancel a synchronous response."
    bg = client.responses.create(model=MODEL, input="hi", background=True)
    wait_for(client, bg.id, ("completed",))
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.cancel(bg.id)
    assert err.value.body["message"] == "Cannot cancel a completed response."
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_missing")


def test_stream_of_foreground_response_is_refused(client, upstream):
    upstream.queue(text("sync"))
    sync = client.responses.create(model=MODEL, input="hi")
    with pytest.raises(openai.BadRequestError):
        list(client.responses.retrieve(sync.id, stream=True))


def test_background_requires_store(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input="hi", background=True, store=False)
    assert err.value.body["param"] == "background"


def test_background_failure_is_stored(client, upstream):
    from tests.fake_upstream import Turn

    upstream.queue(Turn(status=500))
    r = client.responses.create(model=MODEL, input="hi", background=True)
    final = wait_for(client, r.id, ("failed",))
    assert final.error is not None


def test_background_chain_continues_with_previous_response_id(client, upstream):
    upstream.queue(text("first answer"), text("second answer"))
    first = client.responses.create(model=MODEL, input="one", background=True)
    wait_for(client, first.id, ("completed",))
    second = client.responses.create(model=MODEL, input="two", previous_response_id=first.id, background=True)
    assert wait_for(client, second.id, ("completed",)).output_text == "second answer"
    sent = [m["content"] for m in upstream.requests[-1]["messages"]]
    assert "first answer" in str(sent) and "one" in str(sent)


def test_raw_cancel_route_shape(server, upstream):
    upstream.queue(text("x"))
    with httpx.Client(base_url=server.url) as http:
        r = http.post("/v1/responses", json={"model": MODEL, "input": "hi"})
        got = http.post(f"/v1/responses/{r.json()['id']}/cancel")
        assert got.status_code == 400
        assert got.json()["error"]["type"] == "invalid_request_error"
