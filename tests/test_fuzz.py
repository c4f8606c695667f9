"""Seeded mutation fuzzing: broken requests never reach a 5xx, broken backend streams fail cleanly.

Each case takes a valid request (or a valid chat-completions stream) and breaks one or two things
in it: a field set to a value of the wrong type or range, a field dropped or added, a chunk
repeated, dropped, reordered or replaced, the stream cut or sent in odd pieces. The seed is fixed,
so a failure replays; the invariants are what a client relies on whatever it or the model sends.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
from typing import Any

import httpx
import pytest
from openai.types.responses import Response

from tests.conftest import MODEL
from tests.fake_upstream import ThreadServer
from tests.helpers import check_stream

WEIRD: list[Any] = [None, 0, -1, 2**70, 1.5, "", "x" * 3000, "\u0000", "a\u0000b", "é\u2028", [], [None], [{}],
                    {}, {"type": None}, {"type": "x"}, True, "auto", "none", [1, 2], {"a": {"b": []}},
                    "resp_nope", "msg_nope", "m" * 121]
INTERNAL = "server had an error"  # the message of a failure that is Rejoinder's own bug


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _paths(child, (*prefix, i))
    return out


def _mutate(rnd: random.Random, value: Any) -> Any:
    """``value`` with one thing at a random place replaced, dropped or added."""
    value = copy.deepcopy(value)
    inner = _paths(value)[1:]
    if not inner:  # a scalar, an empty object or array: replaced whole
        return rnd.choice(WEIRD)
    path = rnd.choice(inner)
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    roll = rnd.random()
    if roll < 0.15 and isinstance(parent, dict):
        del parent[path[-1]]
    elif roll < 0.25 and isinstance(parent, dict):
        parent[rnd.choice(["zzz", "type", "id", "role", "content", "status", "name"])] = rnd.choice(WEIRD)
    else:
        parent[path[-1]] = rnd.choice(WEIRD)
    return value


def _check_error(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}, r.text


def _request_seeds(prev: str, conv: str, item: str) -> list[dict[str, Any]]:
    fn = {"type": "function", "name": "get_w", "strict": True, "parameters": {
        "type": "object", "properties": {"c": {"type": "string"}}, "required": ["c"], "additionalProperties": False}}
    return [
        {"model": MODEL, "input": "hi", "instructions": "brief", "temperature": 0.5, "top_p": 0.9,
         "max_output_tokens": 64, "metadata": {"k": "v"}, "user": "u", "store": True},
        {"model": MODEL, "input": [{"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "hi"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}]}]},
        {"model": MODEL, "input": [{"role": "user", "content": "w?"},
                                   {"type": "function_call", "call_id": "c1", "name": "get_w", "arguments": "{}"},
                                   {"type": "function_call_output", "call_id": "c1", "output": "sunny"}],
         "tools": [fn], "tool_choice": {"type": "function", "name": "get_w"}, "parallel_tool_calls": False},
        {"model": MODEL, "input": "hi", "text": {"format": {"type": "json_schema", "name": "o", "strict": True,
                                                            "schema": fn["parameters"]}}},
        {"model": MODEL, "input": [{"type": "item_reference", "id": item}], "previous_response_id": prev},
        {"model": MODEL, "input": "again", "conversation": {"id": conv}, "stream": True},
        {"model": MODEL, "input": [{"type": "mcp_approval_response", "approval_request_id": "mcpr_x",
                                    "approve": True}], "previous_response_id": prev},
    ]


def test_mutated_requests_never_reach_a_5xx(server, client):
    rnd = random.Random(20261201)
    first = client.responses.create(model=MODEL, input="seed")
    conv = client.conversations.create(items=[{"role": "user", "content": "x"}])
    seeds = _request_seeds(first.id, conv.id, first.output[0].id)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for _ in range(300):
            body = _mutate(rnd, rnd.choice(seeds))
            if rnd.random() < 0.3:
                body = _mutate(rnd, body)
            if body.get("stream") is True:
                with http.stream("POST", "/v1/responses", json=body) as r:
                    r.read()
            else:
                r = http.post("/v1/responses", json=body)
            _check_error(r)
            if r.status_code == 200 and body.get("stream") is not True:
                final = Response.model_validate(r.json())
                assert final.error is None or INTERNAL not in final.error.message, r.text
        conv_seeds = [
            ("/v1/conversations", {"items": [{"role": "user", "content": "x"}], "metadata": {"a": "b"}}),
            (f"/v1/conversations/{conv.id}", {"metadata": {"a": "c"}}),
            (f"/v1/conversations/{conv.id}/items", {"items": [
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
                {"type": "function_call_output", "call_id": "c", "output": "o"}]}),
        ]
        for _ in range(150):
            path, body = rnd.choice(conv_seeds)
            _check_error(http.post(path, json=_mutate(rnd, body)))
    assert client.responses.retrieve(first.id).output_text == first.output_text  # nothing stored was harmed


# -- the backend's side ------------------------------------------------------------------------

def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: bool = False) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [] if usage else [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5} if usage else None}


def _call(index: int, call_id: str | None, arguments: str, name: str | None = "get_w") -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


STREAM_SEEDS: list[list[Any]] = [
    [_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Hel"}), _chunk({"content": "lo"}),
     _chunk(finish="stop"), _chunk(usage=True)],
    [_chunk({"reasoning_content": "think "}), _chunk({"reasoning_content": "more"}), _chunk({"content": "ok"}),
     _chunk(finish="stop"), _chunk(usage=True)],
    [_chunk(_call(0, "call_1", "")), _chunk(_call(0, None, '{"c":')), _chunk(_call(0, None, '"x"}')),
     _chunk(finish="tool_calls"), _chunk(usage=True)],
    [_chunk({"content": "let me "}), _chunk(_call(0, "call_a", "{}")), _chunk(_call(1, "call_b", '{"c":1}')),
     _chunk(finish="tool_calls"), _chunk(usage=True)],
    [_chunk({"content": "abc"}), _chunk(finish="length"), _chunk(usage=True)],
    [_chunk({"refusal": "no"}), _chunk(finish="stop")],
]
ODD_CHUNKS: list[Any] = ["not json", {"error": {"message": "boom"}}, {"choices": None}, [], 5,
                         {"choices": [{"index": 0, "delta": {"content": "x"}},
                                      {"index": 1, "delta": {"content": "y"}}]}]


def _mutate_stream(rnd: random.Random, chunks: list[Any]) -> list[Any]:
    chunks = copy.deepcopy(chunks)
    roll = rnd.random()
    if roll < 0.5:
        i = rnd.randrange(len(chunks))
        chunks[i] = _mutate(rnd, chunks[i])
    elif roll < 0.6:
        i = rnd.randrange(len(chunks))
        chunks.insert(i, copy.deepcopy(chunks[i]))
    elif roll < 0.7 and len(chunks) > 1:
        del chunks[rnd.randrange(len(chunks))]
    elif roll < 0.8:
        i, j = rnd.randrange(len(chunks)), rnd.randrange(len(chunks))
        chunks[i], chunks[j] = chunks[j], chunks[i]
    else:
        chunks.insert(rnd.randrange(len(chunks) + 1), rnd.choice(ODD_CHUNKS))
    return chunks


def _wire(rnd: random.Random, chunks: list[Any]) -> bytes:
    out = b"".join(b"data: " + (c.encode() if isinstance(c, str) else json.dumps(c).encode()) + b"\n\n"
                   for c in chunks)
    if rnd.random() < 0.85:
        out += b"data: [DONE]\n\n"
    if rnd.random() < 0.1:
        out = out.replace(b"\n", b"\r\n")
    if rnd.random() < 0.05:
        out = out[:rnd.randrange(len(out) + 1)]
    return out


class RawBackend:
    """A chat-completions backend that answers with whatever bytes the test set, in odd pieces."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b""
        self.pieces: list[int] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"text/event-stream")]})
        at = 0
        for size in self.pieces:
            await send({"type": "http.response.body", "body": self.body[at:at + size], "more_body": True})
            at += size
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": self.body[at:], "more_body": False})


def test_mutated_backend_streams_fail_cleanly(make_server):
    """Whatever the backend sends, the turn ends completed, incomplete or failed with a backend
    error, its stream is well-formed, and what is stored is what the client got."""
    rnd = random.Random(1201)
    backend = RawBackend()
    tools = [{"type": "function", "name": "get_w", "strict": False,
              "parameters": {"type": "object", "properties": {"c": {"type": "string"}}}}]
    with ThreadServer(backend) as up:
        server = make_server(models={MODEL: {"base_url": up.url + "/v1"}})
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(200):
                chunks = _mutate_stream(rnd, rnd.choice(STREAM_SEEDS))
                if rnd.random() < 0.4:
                    chunks = _mutate_stream(rnd, chunks)
                backend.body = _wire(rnd, chunks)
                backend.pieces = [rnd.choice([1, 7, 50, 300]) for _ in range(rnd.randrange(4))]
                backend.status = 200 if rnd.random() < 0.95 else rnd.choice([400, 429, 500])
                body: dict[str, Any] = {"model": MODEL, "input": "hi", "tools": tools}
                if rnd.random() < 0.2:
                    body["max_output_tokens"] = 16
                if rnd.random() < 0.5:
                    with http.stream("POST", "/v1/responses", json={**body, "stream": True}) as r:
                        assert r.status_code == 200
                        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
                    final = check_stream(events)
                else:
                    latest = http.get("/v1/responses", params={"limit": 1}).json()["data"]
                    r = http.post("/v1/responses", json=body)
                    if backend.status in (400, 429):
                        # Refused before any output: the client's HTTP error, and no response is left.
                        assert r.status_code == backend.status, r.text
                        assert set(r.json()["error"]) == {"message", "type", "param", "code"}, r.text
                        assert http.get("/v1/responses", params={"limit": 1}).json()["data"] == latest
                        continue
                    assert r.status_code == 200, r.text
                    final = Response.model_validate(r.json())
                assert final.error is None or INTERNAL not in final.error.message, (backend.body, final.error)
                stored = http.get(f"/v1/responses/{final.id}").json()
                assert (stored["status"], stored["output"]) == (final.status, final.model_dump(
                    mode="json", exclude_unset=True)["output"]), backend.body


@pytest.fixture(autouse=True)
def _quiet_backend_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", logger="rejoinder.backends")
