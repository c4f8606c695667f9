"""Assertions shared by tests: every SSE event validates against the SDK's own union."""

from __future__ import annotations

import json
from typing import Any

import httpx
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

EVENT = TypeAdapter(ResponseStreamEvent)


def sse_events(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """POST and parse the raw SSE stream (so we test the wire, not the SDK's tolerance)."""
    events = []
    with httpx.stream("POST", url + "/v1/responses", json={**body, "stream": True}, headers=headers,
                      timeout=30) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                assert data["type"] == name, (name, data["type"])
                events.append(data)
    return events


def check_stream(events: list[dict[str, Any]]) -> Response:
    """Validate every event, sequence numbers and id consistency; return the final response."""
    seqs = [e["sequence_number"] for e in events]
    assert seqs == list(range(len(events))), seqs
    for e in events:
        EVENT.validate_python(e)
    assert events[0]["type"] == "response.created"
    terminal = events[-1]
    assert terminal["type"] in ("response.completed", "response.failed", "response.incomplete")
    final = Response.model_validate(terminal["response"])
    item_ids = {i: item.id for i, item in enumerate(final.output)}
    for e in events:
        if "output_index" in e:
            assert item_ids[e["output_index"]] == (e.get("item_id") or e.get("item", {}).get("id")), e
    ids = {e["response"]["id"] for e in events if "response" in e}
    assert ids == {final.id}
    _check_deltas_add_up(events, terminal["response"]["output"])
    return final


def _check_deltas_add_up(events: list[dict[str, Any]], output: list[dict[str, Any]]) -> None:
    """However the deltas were cut, they add up to the final text and arguments of their item."""
    joined: dict[tuple[str, int, int], str] = {}
    for e in events:
        kind = e["type"]
        if kind in ("response.output_text.delta", "response.reasoning_text.delta",
                    "response.function_call_arguments.delta", "response.mcp_call_arguments.delta",
                    "response.custom_tool_call_input.delta"):
            key = (kind, e["output_index"], e.get("content_index", 0))
            joined[key] = joined.get(key, "") + e["delta"]
    for (kind, index, part), text in joined.items():
        item = output[index]
        if kind.endswith("arguments.delta"):
            assert text == item["arguments"], (kind, text, item)
        elif kind == "response.custom_tool_call_input.delta":
            assert text == item["input"], (kind, text, item)
        else:
            assert text == item["content"][part]["text"], (kind, text, item)


def types(events: list[dict[str, Any]]) -> list[str]:
    """The event types in order, each run of one delta type as one entry: chunks that reach the
    server together make one delta event, so how many a text takes depends on how it arrived."""
    out: list[str] = []
    for e in events:
        if not (out and e["type"] == out[-1] and e["type"].endswith(".delta")):
            out.append(e["type"])
    return out


def create_once_unlocked(client: Any, conversation_id: str, seconds: float, **body: Any) -> Any:
    """Create a response on the conversation, retrying while another turn holds it; fails the test
    if it is still locked after ``seconds``."""
    import time

    import openai

    deadline = time.monotonic() + seconds
    while True:
        try:
            return client.responses.create(conversation=conversation_id, **body)
        except openai.BadRequestError as exc:
            assert exc.code == "conversation_locked"
            assert time.monotonic() < deadline, f"the conversation is still locked after {seconds} s"
            time.sleep(0.05)
