"""Strict chat templates (issue 23): their rules learned from their errors, one retry per rule,
remembered for the model; or named up front in its configuration.

The fake upstream runs the checks of Mistral-7B-Instruct-v0.3's template (as vLLM answers) and of
Gemma 2's (as llama.cpp's server answers), with their real error messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from rejoinder.backends.chat_templates import reshape, rule_for, short_call_id
from tests import strict_templates as T
from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, calls, text
from tests.helpers import check_stream, sse_events

TOOLS = [{"type": "function", "name": "get_weather", "strict": False,
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
CODEX_FIRST_TURN: dict[str, Any] = {  # instructions, a developer message, three user messages in a row
    "instructions": "You are a coding agent.", "store": False,
    "input": [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions>"}]},
              {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<AGENTS.md>"}]},
              {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment>"}]},
              {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Fix the bug."}]}],
}


def _texts(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content") or "") for m in body["messages"])


def _in_order(haystack: str, *needles: str) -> bool:
    at = 0
    for needle in needles:
        at = haystack.find(needle, at)
        if at < 0:
            return False
        at += len(needle)
    return True


@pytest.mark.parametrize("stream", [False, True])
def test_codex_first_turn_on_mistral_learns_alternation_once(
        client: openai.OpenAI, server: Any, upstream: FakeUpstream, stream: bool) -> None:
    upstream.check = T.mistral_v03
    if stream:
        final = check_stream(sse_events(server.url, {"model": MODEL, **CODEX_FIRST_TURN}))
        assert final.status == "completed"
    else:
        assert client.responses.create(model=MODEL, **CODEX_FIRST_TURN).status == "completed"
    assert len(upstream.requests) == 2  # refused once ("roles must alternate"), then accepted
    assert T.mistral_v03(upstream.requests[0]) == T._vllm(T.MISTRAL_ALTERNATE)
    sent = upstream.requests[1]
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert _in_order(_texts(sent), "You are a coding agent.", "<permissions>", "<AGENTS.md>", "<environment>",
                     "Fix the bug.")
    # The model is known now: the next turn costs one request.
    upstream.requests.clear()
    assert client.responses.create(model=MODEL, **CODEX_FIRST_TURN).status == "completed"
    assert len(upstream.requests) == 1


def test_chained_tool_loop_with_a_developer_follow_up_on_mistral(
        client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.check = T.mistral_v03
    upstream.call_id = lambda i: f"call{i:05d}"  # vLLM's Mistral tool parser makes 9-character ids
    upstream.queue(calls(("get_weather", {"city": "Lyon"})), text("Il fait beau."), text("De rien."))
    first = client.responses.create(model=MODEL, input="Weather in Lyon?", tools=TOOLS)  # type: ignore[arg-type]
    call = first.output[0]
    assert call.type == "function_call" and len(upstream.requests) == 1
    second = client.responses.create(model=MODEL, previous_response_id=first.id, tools=TOOLS,  # type: ignore[arg-type]
                                     input=[{"type": "function_call_output", "call_id": call.call_id,
                                             "output": "sunny, 24 C"},
                                            {"role": "developer", "content": "Answer in French."}])
    assert second.status == "completed" and second.output_text == "Il fait beau."
    assert len(upstream.requests) == 3  # "Only user and assistant roles...": learned, retried once
    assert T.mistral_v03(upstream.requests[1]) == T._vllm(T.MISTRAL_ROLES)
    sent = upstream.requests[2]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[0]["content"] == "Answer in French." and sent[3]["content"] == "sunny, 24 C"
    third = client.responses.create(model=MODEL, previous_response_id=second.id, input="Merci!")
    assert third.status == "completed" and len(upstream.requests) == 4  # one request: known


def test_short_call_ids_are_learned_for_calls_the_model_did_not_name(
        client: openai.OpenAI, upstream: FakeUpstream) -> None:
    """Mistral's template takes 9-character call ids only; a history with others (another model's,
    an MCP call's item id) is sent with short ids, the same in the call and its result."""
    upstream.check = T.mistral_v03
    history = [{"role": "user", "content": "Weather?"},
               {"type": "function_call", "call_id": "call_abcdefghijklmnop", "name": "get_weather",
                "arguments": "{}"},
               {"type": "function_call_output", "call_id": "call_abcdefghijklmnop", "output": "rain"}]
    r = client.responses.create(model=MODEL, input=history, tools=TOOLS, store=False)  # type: ignore[arg-type]
    assert r.status == "completed" and len(upstream.requests) == 2
    assert T.mistral_v03(upstream.requests[0]) == T._vllm(T.MISTRAL_IDS)
    sent = upstream.requests[1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"] == short_call_id("call_abcdefghijklmnop")


def test_instructions_on_a_template_without_system_role(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.check = T.gemma  # llama.cpp's server: HTTP 500, "Jinja Exception: System role not supported"
    r = client.responses.create(model=MODEL, instructions="Answer in one word.", input="Capital of France?")
    assert r.status == "completed" and len(upstream.requests) == 2
    assert upstream.requests[1]["messages"] == [{"role": "user",
                                                 "content": "Answer in one word.\n\nCapital of France?"}]
    # Codex's first turn on it: the system rule is known; alternation is learned with one more retry.
    upstream.requests.clear()
    assert client.responses.create(model=MODEL, **CODEX_FIRST_TURN).status == "completed"
    assert len(upstream.requests) == 2
    sent = upstream.requests[1]
    assert [m["role"] for m in sent["messages"]] == ["user"]
    assert _in_order(_texts(sent), "You are a coding agent.", "<permissions>", "<AGENTS.md>", "Fix the bug.")


@pytest.mark.parametrize("stream", [False, True])
def test_a_template_that_still_refuses_is_retried_once_and_its_reason_passed_on(
        server: Any, upstream: FakeUpstream, stream: bool) -> None:
    upstream.check = lambda body: T._vllm(T.MISTRAL_ALTERNATE)  # whatever the shape
    body = {"model": MODEL, "input": "hi"}
    if stream:
        final = check_stream(sse_events(server.url, body))
        assert final.status == "failed" and final.error is not None
        assert (final.error.code, final.error.message) == ("invalid_prompt", T.MISTRAL_ALTERNATE)
    else:
        r = httpx.post(server.url + "/v1/responses", json=body, timeout=30)
        assert r.status_code == 400
        assert r.json()["error"] == {"message": T.MISTRAL_ALTERNATE, "type": "invalid_request_error",
                                     "param": None, "code": None}
    assert len(upstream.requests) == 2  # one retry with the rule applied, no more
    upstream.requests.clear()
    httpx.post(server.url + "/v1/responses", json=body, timeout=30)
    assert len(upstream.requests) == 1  # the rule is applied up front now: nothing new to learn


def test_rules_named_in_the_configuration_cost_no_refusal(
        make_server: Callable[..., Any], upstream: FakeUpstream) -> None:
    server = make_server(models={MODEL: {"base_url": upstream.url + "/v1",  # type: ignore[attr-defined]
                                         "template_rules": ["alternate_roles"]}})
    upstream.check = T.mistral_v03
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    assert client.responses.create(model=MODEL, **CODEX_FIRST_TURN).status == "completed"
    assert len(upstream.requests) == 1


def test_the_known_errors_and_the_reshapes() -> None:
    for message, rule in [
        ("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...",
         "alternate_roles"),
        ("\n---\nError: Jinja Exception: After the optional system message, conversation roles must alternate user "
         "and assistant roles except for tool calls and results.", "alternate_roles"),
        (T.MISTRAL_ROLES, "alternate_roles"), (T.GEMMA_SYSTEM, "no_system_role"),
        ("Unsupported value: 'messages[0].role' does not support 'system' with this model.", "no_system_role"),
        (T.MISTRAL_IDS, "short_call_ids"), ("Invalid value for 'temperature'.", None),
    ]:
        assert rule_for(message) == rule, message
    messages = [{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Hi"},
                {"role": "system", "content": "late"}, {"role": "user", "content": [{"type": "text", "text": "a"}]}]
    assert reshape(messages, ["alternate_roles", "no_system_role"]) == [
        {"role": "user", "content": ""}, {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "\n\n"},
                                     {"type": "text", "text": "late"}, {"type": "text", "text": "\n\n"},
                                     {"type": "text", "text": "a"}]}]
    assert messages[1] == {"role": "user", "content": "Hi"}  # the input is left as it was
    assert reshape(messages, []) is messages  # a lenient backend: nothing is copied
    assert reshape([{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}],
                   ["no_system_role"]) == [{"role": "user", "content": "s"}, {"role": "assistant", "content": "a"}]
    assert len({short_call_id(f"call_{i}") for i in range(1000)}) == 1000
    assert short_call_id("abcDEF123") == "abcDEF123" and short_call_id("x").isalnum()
