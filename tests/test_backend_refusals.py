"""A backend's refusal reaches the client with its reason (issue 23): an HTTP error in OpenAI's
shape while the response does not exist yet (a non-streamed request: its head waits for the
backend's status), ``response.error`` once it does (streamed, background). Never retried, never
a bare "HTTP 400"."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest

from rejoinder.backends.refusal import BackendRefusal, from_status
from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, Turn, text
from tests.helpers import check_stream, sse_events

BAD_VALUE = {"error": {"message": "Invalid value for 'temperature': must be at most 1.5 for this model.",
                       "type": "invalid_request_error", "param": "temperature", "code": "invalid_value"}}
TOO_LONG = {"error": {"message": "This model's maximum context length is 4096 tokens. However, your messages "
                                 "resulted in 5210 tokens. Please reduce the length of the messages.",
                      "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}


def _latest(server: Any) -> list[Any]:
    return httpx.get(server.url + "/v1/responses", params={"limit": 1}).json()["data"]


def test_a_refused_request_is_an_http_error_and_leaves_nothing(server: Any, upstream: FakeUpstream) -> None:
    before = _latest(server)
    upstream.queue(Turn(status=400, error=BAD_VALUE))
    r = httpx.post(server.url + "/v1/responses", json={"model": MODEL, "input": "hi"}, timeout=30)
    assert r.status_code == 400
    assert r.json() == {"error": {"message": BAD_VALUE["error"]["message"], "type": "invalid_request_error",
                                  "param": None, "code": "invalid_value"}}
    assert len(upstream.requests) == 1  # passed on, not retried
    assert _latest(server) == before  # no response is left behind, as on OpenAI


def test_a_context_length_refusal_says_why_in_one_request(server: Any, upstream: FakeUpstream) -> None:
    upstream.queue(Turn(status=400, error=TOO_LONG))
    r = httpx.post(server.url + "/v1/responses", json={"model": MODEL, "input": "a long story"}, timeout=30)
    assert r.status_code == 400
    assert r.json()["error"] == {"message": TOO_LONG["error"]["message"], "type": "invalid_request_error",
                                 "param": "input", "code": "context_length_exceeded"}
    assert len(upstream.requests) == 1


def test_once_the_response_exists_the_reason_is_its_error(server: Any, upstream: FakeUpstream) -> None:
    upstream.queue(Turn(status=400, error=TOO_LONG))
    final = check_stream(sse_events(server.url, {"model": MODEL, "input": "a long story"}))
    assert final.status == "failed" and final.error is not None
    assert (final.error.code, final.error.message) == ("invalid_prompt", TOO_LONG["error"]["message"])
    stored = httpx.get(f"{server.url}/v1/responses/{final.id}").json()
    assert stored["status"] == "failed" and stored["error"]["message"] == TOO_LONG["error"]["message"]
    assert len(upstream.requests) == 1
    # Background: the same reason in the stored response.
    upstream.queue(Turn(status=400, error=BAD_VALUE))
    queued = httpx.post(server.url + "/v1/responses", json={"model": MODEL, "input": "q", "background": True}).json()
    for _ in range(300):
        stored = httpx.get(f"{server.url}/v1/responses/{queued['id']}").json()
        if stored["status"] not in ("queued", "in_progress"):
            break
        time.sleep(0.05)
    assert stored["status"] == "failed"
    assert stored["error"] == {"code": "invalid_prompt", "message": BAD_VALUE["error"]["message"]}


def test_a_refused_turn_leaves_its_conversation_free(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    conv = client.conversations.create()
    upstream.queue(Turn(status=400, error=BAD_VALUE), text("fine"))
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="first", conversation=conv.id)
    assert info.value.body["message"] == BAD_VALUE["error"]["message"]  # type: ignore[index]
    again = client.responses.create(model=MODEL, input="second", conversation=conv.id)
    assert again.status == "completed"
    items = client.conversations.items.list(conv.id, order="asc").data
    assert [i.type for i in items] == ["message", "message"]  # the refused turn added nothing


def test_rate_limits_and_server_side_failures(server: Any, upstream: FakeUpstream) -> None:
    upstream.queue(Turn(status=429, error={"error": {"message": "Rate limit reached for requests.",
                                                     "type": "requests", "code": "rate_limit_exceeded"}}))
    r = httpx.post(server.url + "/v1/responses", json={"model": MODEL, "input": "hi"}, timeout=30)
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
    assert r.json()["error"]["message"] == "Rate limit reached for requests."
    # The operator's problems are not the client's: a failed response, the key's text not repeated.
    upstream.queue(Turn(status=401, error={"error": {"message": "Incorrect API key provided: sk-up***key."}}))
    r = httpx.post(server.url + "/v1/responses", json={"model": MODEL, "input": "hi"}, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "failed"
    assert "sk-up" not in r.text and "credentials" in r.json()["error"]["message"]


@pytest.mark.parametrize(("status", "body", "expected"), [
    (400, {"object": "error", "message": "System role not supported", "type": "BadRequestError", "param": None,
           "code": 400}, ("template", "no_system_role", None, None)),  # vLLM before 0.10
    (400, {"error": {"message": "'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's maximum "
                                "context length is 4096 tokens and your request has 2778 input tokens (8000 > "
                                "4096 - 2778). None", "type": "BadRequestError", "param": None, "code": 400}},
     ("context_length", None, 4096, 2778)),  # vLLM
    (400, {"error": {"message": "This model's maximum context length is 4096 tokens. However, you requested 4200 "
                                "tokens (3200 in the messages, 1000 in the completion).", "type": "BadRequestError",
                     "param": None, "code": 400}}, ("context_length", None, 4096, 3200)),  # older vLLM
    (400, {"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it",
                     "type": "exceed_context_size_error", "n_prompt_tokens": 14429, "n_ctx": 8192}},
     ("context_length", None, 8192, 14429)),  # llama.cpp's server
    (400, {"error": "model requires more system memory (5.2 GiB) than is available (3.1 GiB)"},
     ("other", None, None, None)),  # Ollama
    (422, b"Unprocessable: bad tool schema", ("other", None, None, None)),
])
def test_refusals_are_read_from_every_servers_shape(status: int, body: Any, expected: tuple[Any, ...]) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    refusal = from_status(status, raw)
    assert isinstance(refusal, BackendRefusal)
    assert (refusal.reason, refusal.rule, refusal.window, refusal.prompt_tokens) == expected
    assert refusal.message and "HTTP" not in refusal.message


def test_what_is_not_a_refusal() -> None:
    assert not isinstance(from_status(500, b'{"error": {"message": "CUDA out of memory"}}'), BackendRefusal)
    assert "CUDA" not in from_status(500, b'{"error": {"message": "CUDA out of memory"}}').message
    html = from_status(400, b"<html><body>Bad Request</body></html>")
    assert isinstance(html, BackendRefusal) and "<html>" not in html.message and "400" in html.message
