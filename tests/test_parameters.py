"""Every parameter of ResponseCreateParams is honoured, a hint, or refused by name (issue 16)."""

from __future__ import annotations

import json
import typing
from typing import Any

import httpx
import pytest
from openai.types.responses import Response, ResponseIncludable, response_create_params

from rejoinder.api.create_response import CreateResponse
from rejoinder.api.known_keys import CLIENT_EXTRAS
from rejoinder.api.parameters import HINTS, HONOURED, REFUSED
from tests.conftest import MODEL
from tests.helpers import check_stream, sse_events
from tests.procs import query


def post(server: Any, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/responses", json=body, timeout=30)


def error(resp: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    return body


def test_every_sdk_parameter_is_classified_and_accepted_by_the_model():
    sdk = set(typing.get_type_hints(response_create_params.ResponseCreateParamsNonStreaming))
    extras = CLIENT_EXTRAS[response_create_params.ResponseCreateParamsNonStreaming]
    classified = HONOURED | HINTS | REFUSED
    assert not (HONOURED & HINTS) and not (HONOURED & REFUSED) and not (HINTS & REFUSED)
    assert classified == sdk | extras, classified ^ (sdk | extras)
    assert classified <= set(CreateResponse.model_fields)


@pytest.mark.parametrize(("extra", "param"), [
    ({"bogus": 1}, "bogus"),
    ({"reasoning": {"bogus": 1}}, "reasoning.bogus"),
    ({"reasoning": {"effort": "low", "summary": "auto", "bogus": 1}}, "reasoning.bogus"),
    ({"text": {"bogus": 1}}, "text.bogus"),
    ({"text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}, "bogus": 1}}},
     "text.format.bogus"),
    ({"tools": [{"type": "function", "name": "f", "parameterz": {}}]}, "tools[0].parameterz"),
    ({"tools": [{"type": "mcp", "server_label": "s", "server_url": "http://x/mcp",
                 "require_approval": {"always": {"tool_names": ["a"], "bogus": 1}}}]},
     "tools[0].require_approval.always.bogus"),
    ({"tools": [{"type": "namespace", "name": "n", "description": "d",
                 "tools": [{"type": "function", "name": "f", "bogus": 1}]}]}, "tools[0].tools[0].bogus"),
    ({"tool_choice": {"type": "function", "name": "f", "bogus": 1}}, "tool_choice.bogus"),
    ({"input": [{"role": "user", "content": "x", "bogus": 1}]}, "input[0].bogus"),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": "x", "bogus": 1}]}]},
     "input[0].content[0].bogus"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": "x", "bogus": 1}]}, "input[0].bogus"),
    ({"input": [{"role": "user", "content": "x"}, {"type": "compaction_trigger", "bogus": 1}]}, "input[1].bogus"),
    ({"stream": True, "stream_options": {"bogus": 1}}, "stream_options.bogus"),
    ({"context_management": [{"type": "compaction", "bogus": 1}]}, "context_management[0].bogus"),
    ({"conversation": {"id": "conv_1", "bogus": 1}}, "conversation.bogus"),
    ({"prompt_cache_options": {"ttl": "30m", "bogus": 1}}, "prompt_cache_options.bogus"),
    ({"metadata": {"a": "b"}, "client_metadata": {"a": "b"}, "bogus": 1}, "bogus"),
])
def test_unknown_keys_are_refused_at_every_depth(server, extra, param):
    e = error(post(server, {"model": MODEL, "input": "hi", **extra}))
    assert (e["param"], e["code"]) == (param, "unknown_parameter"), e
    assert f"'{param}'" in e["message"]


def test_unknown_keys_in_conversation_items_are_refused(server):
    r = httpx.post(f"{server.url}/v1/conversations",
                   json={"items": [{"type": "message", "role": "user", "content": "x", "bogus": 1}]})
    assert (error(r)["param"], error(r)["code"]) == ("items[0].bogus", "unknown_parameter")


@pytest.mark.parametrize(("extra", "param", "code"), [
    ({"prompt": {"id": "pmpt_1"}}, "prompt", "unsupported_parameter"),
    ({"moderation": {"model": "omni-moderation-latest"}}, "moderation", "unsupported_parameter"),
    ({"service_tier": "priority"}, "service_tier", "unsupported_value"),
    ({"reasoning": {"mode": "pro"}}, "reasoning.mode", "unsupported_value"),
    ({"image": {"context_compression": "enabled"}}, "image.context_compression", "unsupported_value"),
    ({"prompt_cache_options": {"prewarm": True}}, "prompt_cache_options.prewarm", "unsupported_value"),
    ({"access_programs": {"cyber": "daybreak_red"}}, "access_programs.cyber", "unsupported_value"),
    # values checked against the SDK's types
    ({"reasoning": {"effort": "huge"}}, "reasoning.effort", "invalid_value"),
    ({"reasoning": {"summary": "long"}}, "reasoning.summary", "invalid_value"),
    ({"prompt_cache_retention": "forever"}, "prompt_cache_retention", "invalid_value"),
    ({"prompt_cache_options": {"ttl": "1y"}}, "prompt_cache_options.ttl", "invalid_value"),
    ({"context_management": [{"type": "forgetting"}]}, "context_management[0].type", "invalid_value"),
    ({"context_management": [{"compact_threshold": 5}]}, "context_management[0].type",
     "missing_required_parameter"),
    ({"background_options": {"completion_window": "2h"}}, "background_options.completion_window",
     "invalid_value"),
    ({"presence_penalty": 3}, "presence_penalty", "invalid_value"),
    ({"frequency_penalty": "x"}, "frequency_penalty", "invalid_type"),
    ({"client_metadata": {"k": 1}}, "client_metadata.k", "invalid_type"),
    ({"client_metadata": {f"k{i}": "v" for i in range(17)}}, "client_metadata", "object_above_max_properties"),
    # Codex 0.171 sends an ~800-character x-codex-turn-metadata: longer than metadata allows, accepted.
    ({"client_metadata": {"k": "v" * 16385}}, "client_metadata.k", "string_above_max_length"),
    ({"include": ["message.output_text.logprobs", "nope"]}, "include[1]", "invalid_value"),
    ({"input": [{"type": "compaction_trigger"}, {"role": "user", "content": "x"}]}, "input[0]", "invalid_value"),
    # a tool type is checked against its own type first
    ({"tools": [{"type": "custom", "name": 5}]}, "tools[0].name", "invalid_type"),
    ({"tools": [{"type": "web_search", "search_context_size": "huge"}]}, "tools[0].search_context_size",
     "invalid_value"),
    ({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}, "tools[0].type",
     "unsupported_value"),
    ({"tools": [{"type": "custom", "name": "apply_patch",
                 "format": {"type": "grammar", "syntax": "lark", "definition": "start: nope"}}]},
     "tools[0].format.definition", "invalid_value"),
    ({"tools": [{"type": "teleport"}]}, "tools[0].type", "invalid_value"),
])
def test_refusals_name_the_parameter_and_say_why(server, extra, param, code):
    e = error(post(server, {"model": MODEL, "input": "hi", **extra}))
    assert (e["param"], e["code"]) == (param, code), e


def test_nulls_are_parameters_not_given(server, upstream):
    """The Open Responses schema allows null for tools, tool_choice, text, parallel_tool_calls..."""
    r = post(server, {"model": MODEL, "input": "hi", "tools": None, "tool_choice": None, "text": None,
                      "parallel_tool_calls": None, "metadata": None, "temperature": None, "truncation": None,
                      "store": None, "reasoning": None, "include": None})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["tools"], body["tool_choice"], body["parallel_tool_calls"]) == ([], "auto", True)


def test_hints_and_honoured_parameters_are_accepted_echoed_and_forwarded(server, upstream):
    body = {
        "model": MODEL, "input": "hi", "presence_penalty": 0.5, "frequency_penalty": -1,
        "prompt_cache_key": "user-42", "prompt_cache_retention": "24h", "service_tier": "auto",
        "reasoning": {"effort": "low", "summary": "auto"}, "client_metadata": {"thread_id": "t1"},
        "prompt_cache_options": {"ttl": "12h"}, "image": {"context_compression": "auto"},
        "access_programs": {"cyber": "standard"}, "background_options": {"completion_window": "soonest"},
        "context_management": [{"type": "compaction", "compact_threshold": 200000}],
        "include": list(typing.get_args(ResponseIncludable)),  # every value, each harmless here
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}],
    }
    r = post(server, body)
    assert r.status_code == 200, r.text
    out = r.json()
    Response.model_validate(out)
    assert (out["presence_penalty"], out["frequency_penalty"]) == (0.5, -1.0)
    assert (out["prompt_cache_key"], out["prompt_cache_retention"]) == ("user-42", "24h")
    assert out["reasoning"] == {"effort": "low", "summary": "auto"}
    assert out["service_tier"] == "default"
    assert out["prompt_cache_options"] == {"mode": "implicit", "ttl": "12h", "comparison_response_id": None}
    assert out["image"] == {"context_compression": "disabled"}
    assert out["tools"] == [{"type": "function", "name": "get_weather", "description": None,
                             "parameters": {"type": "object", "properties": {}}, "strict": None}]
    sent = upstream.requests[-1]
    assert (sent["presence_penalty"], sent["frequency_penalty"]) == (0.5, -1.0)
    assert (sent["prompt_cache_key"], sent["prompt_cache_retention"]) == ("user-42", "24h")
    assert sent["reasoning_effort"] == "low"
    assert "thread_id" not in json.dumps(sent) and "client_metadata" not in sent
    assert httpx.get(f"{server.url}/v1/responses/{out['id']}").json() == out


def test_defaults_of_the_open_responses_keys_on_every_response_object(server, client, upstream):
    required = ("presence_penalty", "frequency_penalty", "top_logprobs", "prompt_cache_key", "safety_identifier")
    created = client.responses.create(model=MODEL, input="hi").model_dump()
    listed = httpx.get(f"{server.url}/v1/responses").json()["data"][0]
    events = sse_events(server.url, {"model": MODEL, "input": "hi"})
    background = post(server, {"model": MODEL, "input": "hi", "background": True}).json()
    for obj in (created, listed, background, *[e["response"] for e in events if "response" in e]):
        assert all(key in obj for key in required), obj
        assert (obj["presence_penalty"], obj["frequency_penalty"], obj["top_logprobs"]) == (0, 0, 0)


def test_cache_hints_are_not_sent_to_a_backend_that_takes_none(make_server, upstream):
    server = make_server(models={MODEL: {"base_url": upstream.url + "/v1", "cache_hints": False}})
    r = post(server, {"model": MODEL, "input": "hi", "prompt_cache_key": "k", "prompt_cache_retention": "24h"})
    assert r.json()["prompt_cache_key"] == "k"
    assert "prompt_cache_key" not in upstream.requests[-1] and "prompt_cache_retention" not in upstream.requests[-1]


def test_client_metadata_is_stored_with_the_response(make_server, shared_storage_url, upstream):
    server = make_server(storage_url=shared_storage_url)
    turn = json.dumps({"turn_id": "t" * 40, "workspaces": {"/home/me/project": {"has_changes": True}}}) * 10
    kept = {"session_id": "s-1", "x-codex-turn-metadata": turn}  # Codex's is ~800 characters
    rid = post(server, {"model": MODEL, "input": "hi", "client_metadata": kept}).json()["id"]
    (row,) = query(shared_storage_url, "select request from responses where id = :id", id=rid)
    assert json.loads(row[0]) == {"client_metadata": kept}


def test_logprobs_are_forwarded_and_returned_in_the_output_and_the_events(server, upstream):
    from tests.fake_upstream import text

    upstream.queue(text("one two"), text("one two"))
    body = {"model": MODEL, "input": "count", "top_logprobs": 2, "include": ["message.output_text.logprobs"]}
    r = post(server, body).json()
    sent = upstream.requests[-1]
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    part = Response.model_validate(r).output[0].content[0]
    assert [lp.token for lp in part.logprobs] == ["one ", "two"]
    first = part.logprobs[0]
    assert first.bytes == list(b"one ") and first.logprob == -0.4
    assert [t.token for t in first.top_logprobs] == ["one ", "one ~1"]
    assert r["top_logprobs"] == 2
    events = sse_events(server.url, body)
    check_stream(events)
    deltas = [lp for e in events if e["type"] == "response.output_text.delta" for lp in e["logprobs"]]
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert [lp["token"] for lp in deltas] == [lp["token"] for lp in done["logprobs"]] == ["one ", "two"]
    assert done["logprobs"][0]["top_logprobs"] == [{"token": "one ", "logprob": -0.4},
                                                   {"token": "one ~1", "logprob": -1.4}]


def test_no_logprobs_unless_included(server, upstream):
    r = post(server, {"model": MODEL, "input": "hi", "top_logprobs": 3}).json()
    assert "logprobs" not in upstream.requests[-1]
    assert r["output"][0]["content"][0]["logprobs"] == []


def test_compaction_trigger_and_context_management_reach_the_plan(server, upstream):
    r = post(server, {"model": MODEL, "input": [{"role": "user", "content": "hi"},
                                                {"type": "compaction_trigger"}],
                      "context_management": [{"type": "compaction", "compact_threshold": 1000}]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"
    items = httpx.get(f"{server.url}/v1/responses/{r.json()['id']}/input_items").json()["data"]
    assert [i["type"] for i in items] == ["message"]  # the trigger asks for compaction; it is no context


def test_the_plan_carries_compaction_settings():
    from rejoinder.api.create_response import validate_create

    req = validate_create({"model": MODEL, "input": [{"role": "user", "content": "x"}, {"type": "compaction_trigger"}],
                           "context_management": [{"type": "compaction", "compact_threshold": 1000}]})
    assert req.compaction_requested and req.context_management == [{"type": "compaction", "compact_threshold": 1000}]
    assert len(req.input) == 1


