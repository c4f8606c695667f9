"""The embedded model (SmolLM2-135M through llama.cpp), end to end through a real server.

Every generation is a handful of tokens at temperature 0. Select with ``-m embedded``; they run in
the default suite, and are skipped only where the model is not installed (unless
REJOINDER_REQUIRE_EMBEDDED=1, as in CI, where that is a failure).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from rejoinder.backends.embedded import route_from_settings, unavailable_reason
from rejoinder.backends.embedded_prompt import fit
from rejoinder.backends.embedded_queue import ModelQueue
from rejoinder.backends.token_count import TokenCount
from rejoinder.config import EmbeddedConfig, Settings
from rejoinder.engine import truncation
from rejoinder.errors import BackendError, Overloaded
from rejoinder.http.app import create_app
from tests.conftest import MODEL, storage_url
from tests.fake_upstream import ThreadServer
from tests.helpers import check_stream, sse_events

pytestmark = pytest.mark.embedded

NAME = EmbeddedConfig().name
_missing = unavailable_reason(EmbeddedConfig())
if _missing and os.environ.get("REJOINDER_REQUIRE_EMBEDDED") != "1":
    pytestmark = [pytest.mark.embedded, pytest.mark.skip(reason=f"embedded model unavailable: {_missing}")]

USER_ID_TOOL = {
    "type": "function", "name": "get_user_id", "description": "Get the user id of a user.",
    "parameters": {"type": "object", "properties": {"username": {"type": "string"}},
                   "required": ["username"], "additionalProperties": False},
    "strict": True,
}


@pytest.fixture
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """A server whose only model (unless ``models`` says otherwise) is the embedded one."""
    started: list[ThreadServer] = []

    def make(embedded: dict[str, Any] | None = None, **overrides: Any) -> ThreadServer:
        tmp = tmp_path_factory.mktemp("embedded")
        settings = Settings(**{"data_dir": tmp, "storage_url": storage_url(tmp), "models": {},
                               "embedded": {"enabled": "on", **(embedded or {})}, **overrides})
        app = create_app(settings)
        server = ThreadServer(app).__enter__()
        server.app = app  # type: ignore[attr-defined]
        started.append(server)
        return server

    yield make
    for server in started:
        server.__exit__(None, None, None)


def _client(server: ThreadServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120)


# -- serving ------------------------------------------------------------------------------------


def test_served_by_default_and_beside_configured_models(embedded_server, make_server):
    alone = embedded_server(embedded={"enabled": "auto"})
    assert [m.id for m in _client(alone).models.list()] == [NAME]
    beside = make_server(embedded={"enabled": "on"})
    assert sorted(m.id for m in _client(beside).models.list()) == sorted([MODEL, NAME])
    auto_with_others = make_server(embedded={"enabled": "auto"})
    assert [m.id for m in _client(auto_with_others).models.list()] == [MODEL]


def test_streams_token_by_token(embedded_server):
    server = embedded_server()
    events = sse_events(server.url, {"model": NAME, "input": "Say hello.", "max_output_tokens": 16,
                                     "temperature": 0})
    final = check_stream(events)
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) > 1  # more than one piece: streamed, not sent at the end
    assert final.status in ("completed", "incomplete")
    assert final.output_text == "".join(deltas) and final.output_text.strip()
    assert final.usage is not None and final.usage.input_tokens > 0 and 0 < final.usage.output_tokens <= 16
    assert _client(server).responses.retrieve(final.id).output_text == final.output_text


# -- tools and structured output ---------------------------------------------------------------


def test_function_tool_round_trip(embedded_server):
    client = _client(embedded_server())
    first = client.responses.create(model=NAME, input="What is the user id of charlie?", tools=[USER_ID_TOOL],
                                    tool_choice="required", temperature=0, max_output_tokens=40)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_user_id"
    arguments = json.loads(calls[0].arguments)
    jsonschema.validate(arguments, USER_ID_TOOL["parameters"])
    second = client.responses.create(
        model=NAME, previous_response_id=first.id, tools=[USER_ID_TOOL], tool_choice="none",
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "user_11111"}],
        temperature=0, max_output_tokens=24,
    )
    assert [item.type for item in second.output] == ["message"]
    assert second.output_text.strip()


def test_named_tool_choice_and_auto(embedded_server):
    client = _client(embedded_server())
    other = {**USER_ID_TOOL, "name": "get_weather", "description": "Get the weather of a city.",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                            "additionalProperties": False}}
    named = client.responses.create(model=NAME, input="What is the weather in Paris?", tools=[USER_ID_TOOL, other],
                                    tool_choice={"type": "function", "name": "get_weather"}, temperature=0,
                                    max_output_tokens=40)
    (call,) = [item for item in named.output if item.type == "function_call"]
    assert call.name == "get_weather"
    jsonschema.validate(json.loads(call.arguments), other["parameters"])
    auto = client.responses.create(model=NAME, input="Hi! How are you?", tools=[USER_ID_TOOL], temperature=0,
                                   max_output_tokens=24)
    for item in auto.output:  # either a message or a well-formed call, never a half-made one
        assert item.type in ("message", "function_call")
        if item.type == "function_call":
            jsonschema.validate(json.loads(item.arguments), USER_ID_TOOL["parameters"])


def test_mcp_tool_loop(embedded_server, mcp_server, mcp_log):
    client = _client(embedded_server())
    tool = {"type": "mcp", "server_label": "wf", "server_url": mcp_server, "require_approval": "never",
            "allowed_tools": ["get_user_id"]}
    r = client.responses.create(model=NAME, input="What is the user id of charlie?", tools=[tool],
                                tool_choice="required", max_tool_calls=1, temperature=0, max_output_tokens=40)
    kinds = [item.type for item in r.output]
    assert kinds[:2] == ["mcp_list_tools", "mcp_call"] and kinds[-1] == "message", kinds
    call = r.output[1]
    assert call.name == "get_user_id" and call.error is None
    assert "username" in json.loads(call.arguments)
    assert mcp_log.tool_calls and mcp_log.tool_calls[0][0] == "get_user_id"


PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                           "age": {"type": "integer", "minimum": 0}},
          "required": ["name", "age"], "additionalProperties": False}


def test_structured_output_matches_schema(embedded_server):
    client = _client(embedded_server())
    r = client.responses.create(model=NAME, input="Bob is 30 years old. Describe him.", temperature=0,
                                max_output_tokens=60,
                                text={"format": {"type": "json_schema", "name": "person", "schema": PERSON,
                                                 "strict": True}})
    assert r.status == "completed"
    jsonschema.validate(json.loads(r.output_text), PERSON)
    obj = client.responses.create(model=NAME, input="Give me a JSON object about cats.", temperature=0,
                                  max_output_tokens=60, text={"format": {"type": "json_object"}})
    if obj.status == "completed":
        assert isinstance(json.loads(obj.output_text), dict)


# -- context window -----------------------------------------------------------------------------


def test_input_tokens_count_matches_a_real_create(embedded_server):
    """Counted with the model's own tokenizer and chat template (its default system prompt too):
    what ``usage.input_tokens`` of the same create reports, within a few percent."""
    client = _client(embedded_server())
    body: dict[str, Any] = {"model": NAME, "instructions": "Answer in one word.",
                            "input": [{"role": "user", "content": "What colour is the sky on a clear day?"}]}
    counted = client.responses.input_tokens.count(**body).input_tokens
    used = client.responses.create(**body, max_output_tokens=16, temperature=0).usage
    assert used is not None
    assert abs(counted - used.input_tokens) <= max(2, used.input_tokens * 0.03), (counted, used.input_tokens)


def test_context_window_400_or_truncation(embedded_server, make_server):
    server = embedded_server(embedded={"n_ctx": 256})
    http = httpx.Client(base_url=server.url, timeout=120)
    long_text = "The quick brown fox jumps over the lazy dog. " * 40  # about 400 tokens
    r = http.post("/v1/responses", json={"model": NAME, "input": long_text, "max_output_tokens": 16})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded", r.text
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"Note {i}: " + long_text[:300]}
               for i in range(6)]
    history.append({"role": "user", "content": "Say yes."})
    body = {"model": NAME, "input": history, "instructions": "Be brief.", "max_output_tokens": 16,
            "temperature": 0}
    refused = http.post("/v1/responses", json=body)
    assert refused.status_code == 400, refused.text
    truncated = http.post("/v1/responses", json={**body, "truncation": "auto"})
    assert truncated.status_code == 200, truncated.text
    data = truncated.json()
    assert data["status"] in ("completed", "incomplete") and data["truncation"] == "auto"
    assert data["usage"]["input_tokens"] + data["usage"]["output_tokens"] <= 256
    # Every backend takes truncation "auto" now (issue 16): one whose window is unknown answers too.
    upstream_only = make_server()
    r = httpx.post(upstream_only.url + "/v1/responses", json={"model": MODEL, "input": "hi", "truncation": "auto"})
    assert r.status_code == 200 and r.json()["status"] == "completed" and r.json()["truncation"] == "auto", r.text


def test_truncation_drops_oldest_turns_and_keeps_system():
    """Truncation is the engine's, for every backend, the embedded one included (it counts with
    this model's tokenizer): the oldest turns go, system messages stay; a prompt that does not fit
    without truncation is refused by the model with a context-length error."""
    messages = [{"role": "system", "content": "sys"}]
    messages += [{"role": "user", "content": f"u{i} " * 10} for i in range(5)]
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages[2:2] = [{"role": "assistant", "content": None, "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": "c", "content": "result " * 10}]

    class Words:
        async def count(self, body: dict) -> TokenCount:
            return TokenCount(sum(len(str(m["content"] or "").split()) for m in body["messages"]), exact=True)

    def body_of(ms: list[dict]) -> dict:
        return {"messages": ms}

    kept = asyncio.run(truncation.fit(messages, body_of, Words(), window=60, room=16))
    assert kept[0] == {"role": "system", "content": "sys"} and kept[-1] == messages[-1]
    assert sum(len(str(m["content"] or "").split()) for m in kept) + 16 <= 60
    assert len(kept) < len(messages)
    assert not any(m["role"] == "tool" for m in kept) or any(m.get("tool_calls") for m in kept)  # never apart

    def tokenize(ts: list[dict[str, str]]) -> list[int]:
        return [0] * sum(len(t["content"].split()) for t in ts)

    turns = [{"role": "system", "content": "sys"}] + [{"role": "user", "content": f"u{i} " * 10} for i in range(5)]
    assert fit(turns, tokenize, n_ctx=70, max_tokens=16).max_tokens == 16  # 51 tokens: it fits
    with pytest.raises(BackendError) as info:
        fit(turns, tokenize, n_ctx=60, max_tokens=16)
    assert info.value.code == "invalid_prompt"


# -- the queue --------------------------------------------------------------------------------


def test_queue_is_fifo_and_bounded():
    async def scenario() -> list[int]:
        queue = ModelQueue(max_waiting=2)
        await queue.acquire()
        order: list[int] = []

        async def waiter(i: int) -> None:
            await queue.acquire()
            order.append(i)
            queue.release()

        tasks = [asyncio.ensure_future(waiter(i)) for i in range(2)]
        await asyncio.sleep(0)
        assert queue.waiting == 2 and queue.full()
        with pytest.raises(Overloaded):
            queue.admit()
        with pytest.raises(BackendError):
            await queue.acquire()
        late = asyncio.ensure_future(waiter(99))  # one that gives up leaves the line
        tasks[0].cancel()
        await asyncio.sleep(0)
        queue.release()
        await asyncio.gather(tasks[1], late)
        assert not queue.busy and queue.waiting == 0
        return order

    assert asyncio.run(scenario()) == [1, 99]


def test_queue_admission_is_explicit_and_per_response():
    """A response that passed admission waits in a full line; one that did not is refused. The
    admission was a task-local flag that was never reset, so every later response made in the same
    task (one WebSocket connection makes many) skipped the line's bound."""

    async def scenario() -> None:
        queue = ModelQueue(max_waiting=1)
        queue.admit()  # admitted while the line is empty
        await queue.acquire(admitted=True)
        waiting = asyncio.ensure_future(queue.acquire(admitted=True))  # admitted, so it waits
        await asyncio.sleep(0)
        assert queue.full()
        with pytest.raises(BackendError):  # the same task, a later response, not admitted: refused
            await asyncio.wait_for(queue.acquire(), 10)
        queue.release()
        await waiting
        queue.release()

    asyncio.run(scenario())


LONG = {"type": "object", "properties": {"flags": {"type": "array", "items": {"type": "boolean"},
                                                   "minItems": 40, "maxItems": 40}},
        "required": ["flags"], "additionalProperties": False}


def test_full_queue_is_429_and_queued_requests_do_not_interleave(embedded_server):
    server = embedded_server(embedded={"max_queue": 0})
    generating = threading.Event()
    result: dict[str, Any] = {}

    def long_stream() -> None:
        body = {"model": NAME, "input": "List flags.", "temperature": 0, "max_output_tokens": 300, "stream": True,
                "text": {"format": {"type": "json_schema", "name": "flags", "schema": LONG, "strict": True}}}
        events = []
        with httpx.stream("POST", server.url + "/v1/responses", json=body, timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if events[-1]["type"] == "response.output_text.delta":
                        generating.set()
        result["events"] = events

    thread = threading.Thread(target=long_stream)
    thread.start()
    try:
        assert generating.wait(120)
        busy = httpx.post(server.url + "/v1/responses", json={"model": NAME, "input": "hi"}, timeout=60)
        assert busy.status_code == 429, busy.text
        assert busy.json()["error"]["code"] == "rate_limit_exceeded"
        assert busy.json()["error"]["type"] == "rate_limit_error"
    finally:
        thread.join(120)
    events = result["events"]  # (helpers.check_stream trips over the SDK's `schema` alias in text.format)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["type"] == "response.completed"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    jsonschema.validate(json.loads(text), LONG)
    again = _client(server).responses.create(model=NAME, input="hi", max_output_tokens=16, temperature=0)
    assert again.status in ("completed", "incomplete")


def test_concurrent_requests_each_get_their_own_answer(embedded_server):
    server = embedded_server()

    async def both() -> list[Any]:
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120)
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
                  "additionalProperties": False}
        plain = client.responses.create(model=NAME, input="Say hi.", max_output_tokens=16, temperature=0)
        structured = client.responses.create(
            model=NAME, input="Pick a number.", max_output_tokens=16, temperature=0,
            text={"format": {"type": "json_schema", "name": "n", "schema": schema, "strict": True}})
        out = await asyncio.gather(plain, structured)
        await client.close()
        return out

    plain, structured = asyncio.run(both())
    assert json.loads(structured.output_text).keys() == {"n"}  # no text of the other request mixed in
    assert plain.output_text.strip()


def test_abandoned_generation_frees_the_model():
    route = route_from_settings(Settings(models={}, embedded={"enabled": "on"}), have_other_models=False)
    assert route is not None
    backend = route.backend

    async def scenario() -> str:
        body = {"model": NAME, "messages": [{"role": "user", "content": "Count to one hundred."}],
                "max_tokens": 500, "temperature": 0}
        stream = backend.stream(body)
        await anext(stream)
        await anext(stream)
        await stream.aclose()  # the consumer goes away after the first token
        for _ in range(1000):  # until the worker thread has let go (it checks after every token)
            if not backend.queue.busy:
                break
            await asyncio.sleep(0.05)
        assert not backend.queue.busy
        short = {**body, "max_tokens": 4}
        text = "".join([c["choices"][0]["delta"].get("content") or ""  # type: ignore[index, union-attr]
                        async for batch in backend.stream(short) for c in batch if c.get("choices")])
        await backend.aclose()
        return text

    assert asyncio.run(scenario())


# -- record mode ------------------------------------------------------------------------------


def test_record_mode_writes_recordings(embedded_server, tmp_path):
    rec_dir = tmp_path / "recs"
    recording = embedded_server(recording={"mode": "record", "dir": rec_dir})
    first = _client(recording).responses.create(model=NAME, input="Say hi.", max_output_tokens=16, temperature=0)
    (path,) = rec_dir.glob("*.json")
    data = json.loads(path.read_text())
    assert data["request"]["body"]["model"] == NAME and data["request"]["url"] == f"embedded://{NAME}"
    assert data["response"]["is_streaming"] and data["response"]["body"]
    replay = embedded_server(recording={"mode": "replay", "dir": rec_dir})
    again = _client(replay).responses.create(model=NAME, input="Say hi.", max_output_tokens=16, temperature=0)
    assert again.output_text == first.output_text
