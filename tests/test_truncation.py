"""``truncation: "auto"`` on every backend (issue 16, item 5).

The context window comes from the configuration, or from the server (vLLM's ``/v1/models``,
llama.cpp's ``/props``, Ollama's ``/api/ps`` and ``/api/show``), or, when nothing says it, from the
backend's context-length error, which then costs one retry. The oldest whole items go; system and
developer messages stay; a call never leaves without its output.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from rejoinder.backends.context_window import Discovered, discover
from rejoinder.backends.openai_compat import OpenAICompatBackend
from tests import strict_templates as T
from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream
from tests.helpers import check_stream, sse_events

WINDOW = 300  # the fake model's window, in its tokens: 4 characters, and 4 a message


def fake_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content") or "")) // 4 + len(str(m.get("tool_calls") or "")) // 4 + 4
               for m in messages)


def refuse_overflow(body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """OpenAI's context-length error, with its numbers, past WINDOW; and OpenAI's tool order."""
    n = fake_tokens(body["messages"])
    if n > WINDOW:
        return 400, {"error": {"message": f"This model's maximum context length is {WINDOW} tokens. However, your "
                                          f"messages resulted in {n} tokens. Please reduce the length of the "
                                          "messages.", "type": "invalid_request_error", "param": "messages",
                               "code": "context_length_exceeded"}}
    return T.openai_tool_order(body)


def history() -> list[dict[str, Any]]:
    """A developer message, then six turns of about 50 tokens a message, a tool call among them."""
    items: list[dict[str, Any]] = [{"role": "developer", "content": "Keep answers short."}]
    for i in range(6):
        items.append({"role": "user", "content": f"question {i} " + "x" * 190})
        if i == 2:
            items += [{"type": "function_call", "call_id": "call_2", "name": "lookup", "arguments": "{}"},
                      {"type": "function_call_output", "call_id": "call_2", "output": "y" * 190}]
        items.append({"role": "assistant", "content": f"answer {i} " + "z" * 190})
    items.append({"role": "user", "content": "And now?"})
    return items


def _body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "instructions": "You are terse.", "input": history(), "truncation": "auto",
            "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}],
            **extra}


def _check_truncated(sent: dict[str, Any]) -> None:
    messages = sent["messages"]
    assert fake_tokens(messages) <= WINDOW and T.openai_tool_order(sent) is None
    assert messages[0] == {"role": "system", "content": "You are terse."}  # instructions stay
    assert messages[1] == {"role": "system", "content": "Keep answers short."}  # and developer messages
    assert messages[-1] == {"role": "user", "content": "And now?"}  # the newest item stays
    assert "question 0" not in str(messages)  # the oldest went


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_window_learned_from_the_error_costs_one_retry(
        client: openai.OpenAI, server: Any, upstream: FakeUpstream, stream: bool) -> None:
    upstream.check = refuse_overflow
    if stream:
        final = check_stream(sse_events(server.url, _body()))
    else:
        final = client.responses.create(**_body())  # type: ignore[call-overload]
    assert final.status == "completed" and final.truncation == "auto"
    assert len(upstream.requests) == 2  # refused once with the window's size, then fitted
    _check_truncated(upstream.requests[1])
    upstream.requests.clear()
    assert client.responses.create(**_body()).status == "completed"  # type: ignore[call-overload]
    assert len(upstream.requests) == 1  # the window is known now: fitted before the call
    _check_truncated(upstream.requests[0])


def test_without_truncation_the_same_input_is_refused_with_the_reason(server: Any, upstream: FakeUpstream) -> None:
    upstream.check = refuse_overflow
    r = httpx.post(server.url + "/v1/responses", json=_body(truncation="disabled"), timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    assert r.json()["error"]["message"].startswith(f"This model's maximum context length is {WINDOW} tokens.")
    assert len(upstream.requests) == 1


def _serve_vllm(upstream: FakeUpstream, asked: list[str]) -> None:
    upstream.info["/v1/models"] = {"object": "list", "data": [{"id": MODEL, "object": "model",
                                                               "max_model_len": WINDOW}]}

    def tokenize(body: dict[str, Any]) -> dict[str, Any]:
        asked.append("tokenize")
        return {"count": fake_tokens(body["messages"]), "max_model_len": WINDOW, "tokens": []}

    upstream.info["/tokenize"] = tokenize


def _serve_llama_cpp(upstream: FakeUpstream, asked: list[str]) -> None:
    upstream.info["/props"] = {"default_generation_settings": {"n_ctx": WINDOW}, "total_slots": 1}

    def apply_template(body: dict[str, Any]) -> dict[str, Any]:
        asked.append("apply-template")
        return {"prompt": "".join("<|im_start|>...." + str(m.get("content") or "") + str(m.get("tool_calls") or "")
                                  for m in body["messages"])}

    upstream.info["/apply-template"] = apply_template
    upstream.info["/tokenize"] = lambda body: {"tokens": list(range(len(body["content"]) // 4))}


def _serve_ollama(upstream: FakeUpstream, asked: list[str]) -> None:
    upstream.info["/api/show"] = {"parameters": f"num_ctx {WINDOW}\ntemperature 0.7",
                                  "model_info": {"general.architecture": "llama", "llama.context_length": 131072}}


@pytest.mark.parametrize("serve", [_serve_vllm, _serve_llama_cpp, _serve_ollama])
def test_a_window_the_server_tells_fits_the_input_before_the_call(
        client: openai.OpenAI, upstream: FakeUpstream, serve: Callable[..., None]) -> None:
    upstream.check = refuse_overflow
    asked: list[str] = []
    serve(upstream, asked)
    assert client.responses.create(**_body()).status == "completed"  # type: ignore[call-overload]
    assert len(upstream.requests) == 1
    _check_truncated(upstream.requests[0])
    if serve is not _serve_ollama:
        assert asked  # counted with the server's own tokenizer (Ollama has none: estimated)


def test_a_configured_window_and_an_input_that_cannot_fit(
        make_server: Callable[..., Any], upstream: FakeUpstream) -> None:
    server = make_server(models={MODEL: {"base_url": upstream.url + "/v1",  # type: ignore[attr-defined]
                                         "context_window": WINDOW}})
    upstream.check = refuse_overflow
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    assert client.responses.create(**_body()).status == "completed"  # type: ignore[call-overload]
    assert len(upstream.requests) == 1
    _check_truncated(upstream.requests[0])
    upstream.requests.clear()
    r = httpx.post(server.url + "/v1/responses", timeout=30, json={
        "model": MODEL, "truncation": "auto", "input": [{"role": "user", "content": "w" * 4000}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded", r.text
    assert f"context window of {WINDOW} tokens" in r.json()["error"]["message"]
    assert upstream.requests == []  # known too long: not sent


def test_discovery_reads_each_servers_answer(upstream: FakeUpstream) -> None:
    async def ask() -> Discovered:
        http = OpenAICompatBackend(upstream.url + "/v1", None)  # type: ignore[attr-defined]
        try:
            return await discover(http, MODEL)
        finally:
            await http.aclose()

    assert asyncio.run(ask()).window is None  # OpenAI and others say nothing
    upstream.info["/api/show"] = {"model_info": {"general.architecture": "qwen2", "qwen2.context_length": 32768}}
    found = asyncio.run(ask())
    assert (found.window, found.server) == (32768, "ollama") and "qwen2.context_length" in found.source
    upstream.info["/api/ps"] = {"models": [{"name": MODEL, "model": MODEL, "context_length": 4096}]}
    assert asyncio.run(ask()).window == 4096  # what the loaded model runs with wins
    upstream.info["/props"] = {"default_generation_settings": {"n_ctx": 8192}}
    assert (asyncio.run(ask()).window, asyncio.run(ask()).server) == (8192, "llama.cpp")
    upstream.info["/v1/models"] = {"data": [{"id": "other", "max_model_len": 1}, {"id": MODEL, "max_model_len": 16384}]}
    assert (asyncio.run(ask()).window, asyncio.run(ask()).server) == (16384, "vllm")
