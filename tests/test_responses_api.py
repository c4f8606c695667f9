"""Endpoints and request features of /v1/responses, through the official SDK."""

import json
import threading

import httpx
import openai
import pytest
from openai.types.responses import Response

from tests.conftest import MODEL
from tests.fake_upstream import text


def test_create_retrieve_delete(client, upstream):
    r = client.responses.create(model=MODEL, input="hello", metadata={"k": "v"}, user="u1",
                                safety_identifier="s1")
    assert r.status == "completed" and r.output_text == "echo: hello"
    got = client.responses.retrieve(r.id)
    assert got.model_dump() == r.model_dump()
    assert got.metadata == {"k": "v"} and got.user == "u1" and got.safety_identifier == "s1"
    deleted = client.responses.delete(r.id)
    assert deleted is None or True
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)


def test_usage_reported(client, upstream):
    from tests.fake_upstream import Turn

    upstream.queue(Turn(text="x", usage=(100, 7, 40)))
    r = client.responses.create(model=MODEL, input="hi")
    assert r.usage.input_tokens == 100 and r.usage.output_tokens == 7 and r.usage.total_tokens == 107
    assert r.usage.input_tokens_details.cached_tokens == 40


def test_previous_response_chain_rebuilds_full_context(client, upstream):
    r1 = client.responses.create(model=MODEL, input="one", instructions="be terse")
    r2 = client.responses.create(model=MODEL, input="two", previous_response_id=r1.id)
    r3 = client.responses.create(model=MODEL, input=[{"role": "user", "content": "three"}],
                                 previous_response_id=r2.id, instructions="new rules")
    r4 = client.responses.create(model=MODEL, input="four", previous_response_id=r3.id)
    assert r4.previous_response_id == r3.id
    sent = upstream.requests[-1]["messages"]
    assert sent == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "echo: one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "echo: two"},
        {"role": "user", "content": "three"},
        {"role": "assistant", "content": "echo: three"},
        {"role": "user", "content": "four"},
    ]  # instructions are not carried over by previous_response_id
    assert upstream.requests[2]["messages"][0] == {"role": "system", "content": "new rules"}
    assert upstream.requests[0]["messages"][0] == {"role": "system", "content": "be terse"}


def test_sampling_and_format_forwarded(client, upstream):
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
              "additionalProperties": False}
    upstream.queue(text('{"a": "b"}'))
    r = client.responses.create(model=MODEL, input="json please", temperature=0.2, top_p=0.5, max_output_tokens=64,
                                text={"format": {"type": "json_schema", "name": "obj", "schema": schema,
                                                 "strict": True}})
    sent = upstream.requests[-1]
    assert sent["temperature"] == 0.2 and sent["top_p"] == 0.5 and sent["max_tokens"] == 64
    assert sent["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "obj", "schema": schema, "strict": True}}
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert r.text.format.type == "json_schema" and r.temperature == 0.2
    client.responses.create(model=MODEL, input="obj", text={"format": {"type": "json_object"}})
    assert upstream.requests[-1]["response_format"] == {"type": "json_object"}


def test_input_items_of_every_kind(client, upstream):
    r = client.responses.create(model=MODEL, input=[
        {"role": "system", "content": "sys"},
        {"role": "developer", "content": [{"type": "input_text", "text": "dev"}]},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
            {"type": "input_image", "image_url": "https://example.com/a.png"}]},  # detail defaults to "auto"
        {"role": "assistant", "content": [{"type": "output_text", "text": "seen", "annotations": []}]},
        {"role": "user", "content": "ok"},
    ])
    sent = upstream.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "sys"}
    assert sent[1] == {"role": "system", "content": "dev"}
    assert sent[2]["content"][1] == {"type": "image_url",
                                     "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
    assert sent[2]["content"][2] == {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    assert sent[3] == {"role": "assistant", "content": "seen"}
    items = client.responses.input_items.list(r.id, order="asc")
    assert items.data[2].content[2].detail == "auto"
    assert [i.role for i in items.data] == ["system", "developer", "user", "assistant", "user"]
    assert all(i.id.startswith("msg_") for i in items.data)


def test_item_reference_resolves_from_chain(client, upstream):
    r1 = client.responses.create(model=MODEL, input="first")
    msg_id = r1.output[0].id
    client.responses.create(model=MODEL, input=[{"type": "item_reference", "id": msg_id},
                                                {"role": "user", "content": "again"}], previous_response_id=r1.id)
    assert upstream.requests[-1]["messages"][-2] == {"role": "assistant", "content": "echo: first"}


def test_input_items_pagination(client, upstream):
    inputs = [{"role": "user", "content": f"m{i}", "id": f"msg_{i:03d}", "type": "message"} for i in range(7)]
    r = client.responses.create(model=MODEL, input=inputs)
    page = client.responses.input_items.list(r.id, limit=3, order="asc")
    assert [i.id for i in page.data] == ["msg_000", "msg_001", "msg_002"] and page.has_more
    page = client.responses.input_items.list(r.id, limit=3, order="asc", after="msg_002")
    assert [i.id for i in page.data] == ["msg_003", "msg_004", "msg_005"] and page.has_more
    page = client.responses.input_items.list(r.id, limit=3, order="asc", after="msg_005")
    assert [i.id for i in page.data] == ["msg_006"] and not page.has_more
    page = client.responses.input_items.list(r.id, limit=7, order="asc")
    assert len(page.data) == 7 and not page.has_more  # exact at the boundary
    page = client.responses.input_items.list(r.id, limit=2)  # default order: desc
    assert [i.id for i in page.data] == ["msg_006", "msg_005"] and page.has_more
    assert page.first_id == "msg_006" and page.last_id == "msg_005"
    page = client.responses.input_items.list(r.id, limit=10, after="msg_000")
    assert page.data == [] and not page.has_more
    all_ids = [i.id for i in client.responses.input_items.list(r.id, limit=2, order="asc")]  # auto-paginates
    assert all_ids == [f"msg_{i:03d}" for i in range(7)]


def test_list_responses_extension(server, client, upstream):
    ids = [client.responses.create(model=MODEL, input=f"q{i}").id for i in range(5)]
    body = httpx.get(f"{server.url}/v1/responses", params={"limit": 2}).json()
    assert [r["id"] for r in body["data"]] == ids[::-1][:2] and body["has_more"]
    body = httpx.get(f"{server.url}/v1/responses", params={"limit": 2, "after": body["last_id"]}).json()
    assert [r["id"] for r in body["data"]] == ids[::-1][2:4] and body["has_more"]
    body = httpx.get(f"{server.url}/v1/responses", params={"order": "asc", "limit": 5}).json()
    assert [r["id"] for r in body["data"]] == ids and not body["has_more"]
    for r in body["data"]:
        Response.model_validate(r)
    assert httpx.get(f"{server.url}/v1/responses", params={"model": "other"}).json()["data"] == []


def test_store_false_stores_nothing(client, upstream):
    r = client.responses.create(model=MODEL, input="secret", store=False)
    assert r.output_text == "echo: secret"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="x", previous_response_id=r.id)


def test_models_listing(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("nope")
    assert missing.value.code == "model_not_found"


def test_health(server):
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}


def test_a_non_streamed_reply_sends_its_head_while_the_model_works(server, upstream):
    """Once the run starts the status is known (a failed run is a ``failed`` Response, still 200),
    so the head goes out then and the client reads it while the model works; the body follows once
    the response is stored."""
    gate = threading.Event()
    upstream.queue(text("late answer", gate=gate))
    head_seen = threading.Event()
    result: dict = {}

    def call() -> None:
        with httpx.stream("POST", server.url + "/v1/responses", json={"model": MODEL, "input": "hi"},
                          timeout=30) as r:
            result["status"], result["type"] = r.status_code, r.headers["content-type"]
            head_seen.set()
            result["body"] = r.read()

    caller = threading.Thread(target=call)
    caller.start()
    try:
        assert head_seen.wait(10), "the head waited for the model's answer"
    finally:
        gate.set()
        caller.join(30)
    assert result["status"] == 200 and result["type"] == "application/json"
    body = json.loads(result["body"])
    assert body["status"] == "completed" and Response.model_validate(body).output_text == "late answer"
    assert httpx.get(f"{server.url}/v1/responses/{body['id']}").json() == body


def test_a_non_streamed_reply_whose_store_fails_at_the_end_breaks_the_connection(server, upstream, monkeypatch):
    """The head is out by then: the client sees the reply broken off (and the SDK retries), never a
    200 with an unstored answer."""
    from rejoinder.store.responses import ResponseStore

    async def broken(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ResponseStore, "finish", broken)
    upstream.queue(text("never stored"))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(server.url + "/v1/responses", json={"model": MODEL, "input": "hi"}, timeout=30)
