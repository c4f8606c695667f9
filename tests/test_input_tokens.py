"""``POST /v1/responses/input_tokens``: the first model call of the same create, counted by the
backend's tokenizer where it has one (vLLM ``/tokenize``, llama.cpp ``/apply-template`` +
``/tokenize``), else estimated. The embedded model's count is in test_embedded.py."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from rejoinder.backends.token_count import estimate
from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream


def test_counts_what_a_create_would_send(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    short = client.responses.input_tokens.count(model=MODEL, input="Hi")
    long = client.responses.input_tokens.count(model=MODEL, input="Hi " * 300, instructions="Be brief.")
    assert short.object == "response.input_tokens"
    assert 0 < short.input_tokens < long.input_tokens
    body = {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Hi " * 300}]}
    assert long.input_tokens == estimate(body)  # no tokenizer behind the fake: the documented estimate
    assert upstream.requests == []  # counting calls no model


def test_counts_the_chain_and_the_tools(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    first = client.responses.create(model=MODEL, input="A long first message " * 20)
    alone = client.responses.input_tokens.count(model=MODEL, input="next")
    chained = client.responses.input_tokens.count(model=MODEL, input="next", previous_response_id=first.id)
    tool = {"type": "function", "name": "lookup", "description": "Look a thing up " * 10,
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}
    with_tools = client.responses.input_tokens.count(model=MODEL, input="next", tools=[tool])  # type: ignore[list-item]
    assert chained.input_tokens > alone.input_tokens + 50
    assert with_tools.input_tokens > alone.input_tokens


def test_uses_the_backends_tokenizer(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.info["/v1/models"] = {"object": "list", "data": [{"id": MODEL, "object": "model", "max_model_len": 4096}]}
    asked: list[dict[str, Any]] = []

    def tokenize(body: dict[str, Any]) -> dict[str, Any]:
        asked.append(body)
        return {"count": 1234, "max_model_len": 4096, "tokens": []}

    upstream.info["/tokenize"] = tokenize
    assert client.responses.input_tokens.count(model=MODEL, input="Hello").input_tokens == 1234
    assert asked[0]["messages"] == [{"role": "user", "content": "Hello"}]


@pytest.mark.parametrize(("body", "status", "code", "param"), [
    ({"input": "hi"}, 400, "missing_required_parameter", "model"),
    ({"model": "nope", "input": "hi"}, 404, "model_not_found", "model"),
    ({"model": MODEL, "input": "hi", "stream": True}, 400, "unknown_parameter", "stream"),
    ({"model": MODEL, "input": "hi", "previous_response_id": "resp_missing"}, 404, None, "previous_response_id"),
])
def test_bad_requests(server: Any, body: dict[str, Any], status: int, code: str | None, param: str) -> None:
    r = httpx.post(server.url + "/v1/responses/input_tokens", json=body, timeout=30)
    assert r.status_code == status, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == (code, param)
