"""Events are fixed when made, and checked against the SDK's types in this suite."""

from __future__ import annotations

import json

import orjson
import pydantic
import pytest
from openai.types import responses as T

from rejoinder.engine import events
from rejoinder.engine.events import ResponseState, event_json


def _response() -> dict:
    return {"id": "resp_1", "object": "response", "created_at": 1700000000, "status": "in_progress",
            "model": "m", "output": [], "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "error": None, "incomplete_details": None, "instructions": None, "metadata": {}}


def test_an_event_does_not_change_with_the_state_it_describes() -> None:
    st = ResponseState(_response())
    created = st.created()
    index, added = st.message_start()
    st.part_start(index, "output_text")
    st.text_delta(index, "hello")
    st.part_done(index)
    st.message_done(index)
    st.completed()
    body = json.loads(event_json(created))
    assert body["response"]["status"] == "in_progress" and body["response"]["output"] == []
    item = json.loads(event_json(added[0]))["item"]
    assert item["status"] == "in_progress" and item["content"] == []


def test_wire_json_keeps_integer_times_and_wire_names() -> None:
    response = {**_response(), "text": {"format": {"type": "json_schema", "name": "x", "schema": {}, "strict": True}}}
    body = json.loads(event_json(ResponseState(response).created()))
    assert body["response"]["created_at"] == 1700000000 and isinstance(body["response"]["created_at"], int)
    assert "schema" in body["response"]["text"]["format"]
    T.ResponseCreatedEvent.model_validate(body)


def test_validation_is_on_in_this_suite_and_catches_a_drift() -> None:
    assert events._VALIDATE
    with pytest.raises(pydantic.ValidationError):
        events._ev(T.ResponseTextDeltaEvent, type="response.output_text.delta", sequence_number=1, delta="x")


def test_renumbering_changes_only_the_sequence_number() -> None:
    st = ResponseState(_response())
    event = st.created()
    again = event.renumbered(7)
    assert again.sequence_number == 7 and json.loads(again.data) == {**json.loads(event.data), "sequence_number": 7}


def test_a_renumbered_lifecycle_event_keeps_its_response() -> None:
    from rejoinder.api.create_response import validate_create
    from rejoinder.engine.prepare import _initial_response

    st = ResponseState(_initial_response(validate_create({"model": "m", "input": "hi"}), "resp_1", None))
    done = st.completed().renumbered(7)
    assert done.sequence_number == 7 and done.response is not None
    assert orjson.loads(done.data) == {"type": "response.completed", "sequence_number": 7,
                                       "response": orjson.loads(done.response)}
