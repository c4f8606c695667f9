"""Real clients' requests, as they send them: Codex CLI's first request, the OpenAI Agents SDK with
each ModelSettings users set, and the Open Responses compliance suite's requests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from agents import Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai.types.shared import Reasoning

from tests.conftest import MODEL
from tests.fake_upstream import calls, text
from tests.helpers import check_stream, sse_events

FIXTURES = Path(__file__).parent / "fixtures"


def _codex() -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / "codex_first_request.json").read_text())
    body["model"] = MODEL
    return body


# -- Codex CLI ----------------------------------------------------------------------------------


def test_codex_first_request_runs_with_every_tool_it_declares(server, upstream):
    body = _codex()
    events = sse_events(server.url, body)
    final = check_stream(events)
    assert final.status == "completed" and final.store is False
    assert final.text is not None and final.text.verbosity == "low"
    assert final.reasoning is not None and final.reasoning.summary == "auto"
    assert final.prompt_cache_key == body["prompt_cache_key"]
    assert [t.type for t in final.tools] == [t["type"] for t in body["tools"]]  # echoed as declared
    # offered: the functions, the namespace's tool under a qualified name, apply_patch with its
    # one string parameter, and tool_search; web_search is not (no search provider here)
    offered = {t["function"]["name"]: t["function"] for t in upstream.requests[-1]["tools"]}
    assert list(offered) == ["exec_command", "write_stdin", "apply_patch", "mcp__docs__search", "tool_search"]
    assert offered["apply_patch"]["parameters"]["required"] == ["input"]
    assert "*** Begin Patch" in offered["apply_patch"]["description"]  # the grammar, told to the model
    assert "x-rejoinder-grammar" not in json.dumps(upstream.requests[-1])
    sent = upstream.requests[-1]
    assert [m["role"] for m in sent["messages"]] == ["system", "system", "system", "user"]
    assert sent["prompt_cache_key"] == body["prompt_cache_key"]
    assert "client_metadata" not in sent and body["client_metadata"]["session_id"] not in json.dumps(sent)


# -- Open Responses compliance suite -------------------------------------------------------------


OPEN_RESPONSES = json.loads((FIXTURES / "open_responses_requests.json").read_text())


@pytest.mark.parametrize("name", sorted(OPEN_RESPONSES["tests"]))
def test_open_responses_request(server, upstream, name):
    case = OPEN_RESPONSES["tests"][name]
    if case.get("function_call"):
        upstream.queue(calls(("get_weather", {"location": "San Francisco, CA"})))
    body = {"model": MODEL, **case["body"]}
    if case["stream"]:
        events = sse_events(server.url, body)
        check_stream(events)
        final = events[-1]["response"]
        kinds = [e["type"] for e in events]
        if case.get("function_call"):
            assert {"response.function_call_arguments.delta", "response.function_call_arguments.done"} <= set(kinds)
    else:
        r = httpx.post(server.url + "/v1/responses", json=body, timeout=30)
        assert r.status_code == 200, r.text
        final = r.json()
    missing = [k for k in OPEN_RESPONSES["required_response_keys"] if k not in final]
    assert not missing, missing
    assert isinstance(final["created_at"], int) and isinstance(final["completed_at"], int)
    for key in ("presence_penalty", "frequency_penalty", "top_p", "temperature"):
        assert isinstance(final[key], int | float), key
    assert isinstance(final["top_logprobs"], int)
    assert final["output"] and final["status"] == "completed"
    for tool in final["tools"]:
        assert {"type", "name", "description", "parameters", "strict"} <= tool.keys()
    if case.get("function_call"):
        assert any(item["type"] == "function_call" for item in final["output"])


# -- the OpenAI Agents SDK -----------------------------------------------------------------------


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def _run_agent(server: Any, settings: ModelSettings, prompt: str = "hi", tools: list[Any] | None = None) -> Any:
    set_tracing_disabled(True)

    async def run() -> Any:
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=30)
        model = OpenAIResponsesModel(model=MODEL, openai_client=client)
        agent = Agent(name="helper", instructions="Be brief.", model=model, model_settings=settings,
                      tools=tools or [])
        try:
            return await Runner.run(agent, prompt)
        finally:
            await client.close()

    return asyncio.run(run())


@pytest.mark.parametrize("settings", [
    ModelSettings(reasoning=Reasoning(effort="low", summary="auto")),
    ModelSettings(top_logprobs=2),
    ModelSettings(prompt_cache_retention="24h"),
    ModelSettings(context_management=[{"type": "compaction", "compact_threshold": 200000}]),
    ModelSettings(temperature=0.2, top_p=0.9, presence_penalty=0.1, frequency_penalty=0.1, max_tokens=64,
                  parallel_tool_calls=False, store=True, metadata={"run": "1"}),
], ids=["reasoning-summary", "top-logprobs", "prompt-cache-retention", "context-management", "sampling"])
def test_agents_sdk_runs_with_model_settings(server, upstream, settings):
    result = _run_agent(server, settings)
    assert result.final_output == "echo: hi"
    sent = upstream.requests[-1]
    if settings.top_logprobs:
        assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    if settings.prompt_cache_retention:
        assert sent["prompt_cache_retention"] == "24h"
    if settings.reasoning:
        assert sent["reasoning_effort"] == "low"


def test_agents_sdk_runs_with_truncation_auto(server, upstream):
    """Issue 16 item 5: an OpenAI-compatible backend whose window nobody told takes it too."""
    assert _run_agent(server, ModelSettings(truncation="auto")).final_output == "echo: hi"


def test_agents_sdk_tool_loop_with_strict_function_tools(server, upstream):
    upstream.queue(calls(("get_weather", {"city": "Paris"})), text("It is sunny in Paris."))
    result = _run_agent(server, ModelSettings(), "Weather in Paris?", [get_weather])
    assert result.final_output == "It is sunny in Paris."
    tool = upstream.requests[0]["tools"][0]["function"]
    assert tool["name"] == "get_weather" and tool.get("strict") is True
    outputs = [m for m in upstream.requests[1]["messages"] if m["role"] == "tool"]
    assert outputs[0]["content"] == "sunny in Paris"
