"""The response under construction, and every event it emits.

Each SSE event type is produced in exactly one method here. Items are kept as the wire dicts the
API returns. An event is serialized the moment it is made, because the state it describes keeps
changing (an item gains content, the response its output). Each is built naming its SDK type; with
``REJOINDER_VALIDATE_EVENTS=1`` (the test suite sets it) every event is validated against that type,
so a drift from the spec fails loudly. Validating in production cost ~0.4 ms a turn (a whole
Response on each lifecycle event), a third of Rejoinder's own work on a short answer.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import orjson
from openai.types import responses as T
from pydantic import BaseModel

from rejoinder.ids import new_id, new_item_id
from rejoinder.item_view import shown, shown_response

_VALIDATE = os.environ.get("REJOINDER_VALIDATE_EVENTS") == "1"


@dataclass(frozen=True, slots=True)
class Event:
    """One SSE event: its type, sequence number and JSON, fixed when it happened."""

    type: str
    sequence_number: int
    data: bytes
    response: bytes | None = None  # a lifecycle event's Response, the slice of ``data`` it fills

    def renumbered(self, sequence_number: int) -> Event:
        body = orjson.loads(self.data)
        body["sequence_number"] = sequence_number
        return Event(self.type, sequence_number, orjson.dumps(body), self.response)


def _ev(kind: type[BaseModel], **fields: Any) -> Event:
    if _VALIDATE:
        kind.model_validate(fields)
    return Event(fields["type"], fields["sequence_number"], orjson.dumps(fields))


def _response_ev(kind: type[BaseModel], type_: str, sequence_number: int, response: dict[str, Any],
                 include: Any = None) -> Event:
    """A lifecycle event (``response.created``... ``response.completed``). Its Response is
    serialized once and kept apart too: a non-streamed reply is the terminal event's own bytes.
    Parts of items only ``include`` shows are left out (item_view.py)."""
    response = shown_response(response, include)
    if _VALIDATE:
        kind.model_validate({"type": type_, "sequence_number": sequence_number, "response": response})
    body = orjson.dumps(response)
    data = b'{"type":"%s","sequence_number":%d,"response":%s}' % (type_.encode(), sequence_number, body)
    return Event(type_, sequence_number, data, body)


def event_json(event: Event) -> str:
    """An event as it goes on the wire."""
    return event.data.decode()


TERMINAL_EVENT_TYPES = frozenset({"response.completed", "response.failed", "response.incomplete"})
_TERMINAL_EVENT: dict[str, type[BaseModel]] = {"completed": T.ResponseCompletedEvent, "failed": T.ResponseFailedEvent,
                   "incomplete": T.ResponseIncompleteEvent}
TERMINAL_STATUSES = frozenset(_TERMINAL_EVENT)


def terminal_event(response: dict[str, Any], sequence_number: int) -> Event | None:
    """The terminal event of a response that has ended; None for a cancelled one (it has none)."""
    kind = _TERMINAL_EVENT.get(response["status"])
    if kind is None:
        return None
    return _response_ev(kind, f"response.{response['status']}", sequence_number, response)


def empty_usage() -> dict[str, Any]:
    return {
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
    }


class ResponseState:
    """Owns the response dict, the output items and the sequence counter."""

    def __init__(self, response: dict[str, Any]):
        self.response = response
        self.output: list[dict[str, Any]] = response["output"]
        self.seq = -1
        self.usage = empty_usage()
        self.include: frozenset[str] = frozenset()  # the request's include (item_view.py)

    def _n(self) -> int:
        self.seq += 1
        return self.seq

    # -- response lifecycle ------------------------------------------------------------------

    def created(self) -> Event:
        return _response_ev(T.ResponseCreatedEvent, "response.created", self._n(), self.response, self.include)

    def queued(self) -> Event:
        return _response_ev(T.ResponseQueuedEvent, "response.queued", self._n(), self.response, self.include)

    def in_progress(self) -> Event:
        self.response["status"] = "in_progress"
        return _response_ev(T.ResponseInProgressEvent, "response.in_progress", self._n(), self.response, self.include)

    def _end(self, status: str) -> None:
        self.response["status"] = status
        self.response["completed_at"] = int(time.time()) if status == "completed" else None
        self.response["usage"] = self.usage

    def completed(self) -> Event:
        self._end("completed")
        return _response_ev(T.ResponseCompletedEvent, "response.completed", self._n(), self.response, self.include)

    def incomplete(self, reason: str) -> Event:
        self._end("incomplete")
        self.response["incomplete_details"] = {"reason": reason}
        return _response_ev(T.ResponseIncompleteEvent, "response.incomplete", self._n(), self.response, self.include)

    def failed(self, code: str, message: str) -> Event:
        self._end("failed")
        self.response["error"] = {"code": code, "message": message}
        return _response_ev(T.ResponseFailedEvent, "response.failed", self._n(), self.response, self.include)

    def cancelled(self) -> None:
        """Cancelled responses get no terminal SSE event of their own; the stream just ends."""
        self._end("cancelled")

    def add_usage(self, prompt: int, completion: int, cached: int, reasoning: int) -> None:
        u = self.usage
        u["input_tokens"] += prompt
        u["output_tokens"] += completion
        u["total_tokens"] += prompt + completion
        u["input_tokens_details"]["cached_tokens"] += cached
        u["output_tokens_details"]["reasoning_tokens"] += reasoning

    # -- items -------------------------------------------------------------------------------

    def add_item(self, item: dict[str, Any]) -> tuple[int, Event]:
        self.output.append(item)
        index = len(self.output) - 1
        return index, _ev(T.ResponseOutputItemAddedEvent,
            type="response.output_item.added", sequence_number=self._n(), output_index=index,
            item=shown(item, self.include),
        )

    def item_done(self, index: int) -> Event:
        return _ev(T.ResponseOutputItemDoneEvent,
            type="response.output_item.done", sequence_number=self._n(), output_index=index,
            item=shown(self.output[index], self.include),
        )

    # -- assistant message -------------------------------------------------------------------

    def message_start(self) -> tuple[int, list[Event]]:
        item = {"id": new_item_id("message"), "type": "message", "status": "in_progress", "role": "assistant",
                "content": []}
        index, added = self.add_item(item)
        return index, [added]

    def part_start(self, index: int, kind: str) -> Event:
        item = self.output[index]
        part: dict[str, Any] = (
            {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            if kind == "output_text" else {"type": "refusal", "refusal": ""}
        )
        item["content"].append(part)
        return _ev(T.ResponseContentPartAddedEvent,
            type="response.content_part.added", sequence_number=self._n(), item_id=item["id"],
            output_index=index, content_index=len(item["content"]) - 1, part=dict(part),
        )

    def text_delta(self, index: int, text: str, logprobs: list[Any] | None = None) -> Event:
        item = self.output[index]
        part = item["content"][-1]
        part["text"] += text
        if logprobs:
            part["logprobs"].extend(_part_logprobs(logprobs))
        return _ev(T.ResponseTextDeltaEvent,
            type="response.output_text.delta", sequence_number=self._n(), item_id=item["id"], output_index=index,
            content_index=len(item["content"]) - 1, delta=text, logprobs=_event_logprobs(logprobs or ()),
        )

    def annotation_added(self, index: int, annotation: dict[str, Any]) -> Event:
        """An annotation (a citation) on the open ``output_text`` part of the message at ``index``."""
        item = self.output[index]
        part = item["content"][-1]
        part["annotations"].append(annotation)
        return _ev(T.ResponseOutputTextAnnotationAddedEvent,
            type="response.output_text.annotation.added", sequence_number=self._n(), item_id=item["id"],
            output_index=index, content_index=len(item["content"]) - 1,
            annotation_index=len(part["annotations"]) - 1, annotation=annotation,
        )

    def refusal_delta(self, index: int, text: str) -> Event:
        item = self.output[index]
        part = item["content"][-1]
        part["refusal"] += text
        return _ev(T.ResponseRefusalDeltaEvent,
            type="response.refusal.delta", sequence_number=self._n(), item_id=item["id"], output_index=index,
            content_index=len(item["content"]) - 1, delta=text,
        )

    def part_done(self, index: int) -> list[Event]:
        item = self.output[index]
        ci = len(item["content"]) - 1
        part = item["content"][ci]
        if part["type"] == "output_text":
            text_done: Event = _ev(T.ResponseTextDoneEvent,
                type="response.output_text.done", sequence_number=self._n(), item_id=item["id"], output_index=index,
                content_index=ci, text=part["text"], logprobs=_event_logprobs(part["logprobs"]),
            )
        else:
            text_done = _ev(T.ResponseRefusalDoneEvent,
                type="response.refusal.done", sequence_number=self._n(), item_id=item["id"], output_index=index,
                content_index=ci, refusal=part["refusal"],
            )
        part_done = _ev(T.ResponseContentPartDoneEvent,
            type="response.content_part.done", sequence_number=self._n(), item_id=item["id"], output_index=index,
            content_index=ci, part=dict(part),
        )
        return [text_done, part_done]

    def message_done(self, index: int, status: str = "completed") -> Event:
        self.output[index]["status"] = status
        return self.item_done(index)

    # -- reasoning ---------------------------------------------------------------------------

    def reasoning_start(self) -> tuple[int, list[Event]]:
        item = {"id": new_item_id("reasoning"), "type": "reasoning", "summary": [],
                "content": [{"type": "reasoning_text", "text": ""}], "status": "in_progress"}
        index, added = self.add_item(item)
        return index, [added]

    def reasoning_delta(self, index: int, text: str) -> Event:
        item = self.output[index]
        item["content"][0]["text"] += text
        return _ev(T.ResponseReasoningTextDeltaEvent,
            type="response.reasoning_text.delta", sequence_number=self._n(), item_id=item["id"],
            output_index=index, content_index=0, delta=text,
        )

    def reasoning_done(self, index: int) -> list[Event]:
        item = self.output[index]
        item["status"] = "completed"
        done = _ev(T.ResponseReasoningTextDoneEvent,
            type="response.reasoning_text.done", sequence_number=self._n(), item_id=item["id"],
            output_index=index, content_index=0, text=item["content"][0]["text"],
        )
        return [done, self.item_done(index)]

    # -- reasoning summaries (engine/reasoning.py: the summary is the reasoning text itself) ---

    def summary_part_start(self, index: int) -> Event:
        item = self.output[index]
        item["summary"].append({"type": "summary_text", "text": ""})
        return _ev(T.ResponseReasoningSummaryPartAddedEvent,
            type="response.reasoning_summary_part.added", sequence_number=self._n(), item_id=item["id"],
            output_index=index, summary_index=len(item["summary"]) - 1, part={"type": "summary_text", "text": ""},
        )

    def summary_delta(self, index: int, text: str) -> Event:
        item = self.output[index]
        item["summary"][-1]["text"] += text
        return _ev(T.ResponseReasoningSummaryTextDeltaEvent,
            type="response.reasoning_summary_text.delta", sequence_number=self._n(), item_id=item["id"],
            output_index=index, summary_index=len(item["summary"]) - 1, delta=text,
        )

    def summary_part_done(self, index: int) -> list[Event]:
        item = self.output[index]
        si = len(item["summary"]) - 1
        part = item["summary"][si]
        return [
            _ev(T.ResponseReasoningSummaryTextDoneEvent,
                type="response.reasoning_summary_text.done", sequence_number=self._n(), item_id=item["id"],
                output_index=index, summary_index=si, text=part["text"]),
            _ev(T.ResponseReasoningSummaryPartDoneEvent,
                type="response.reasoning_summary_part.done", sequence_number=self._n(), item_id=item["id"],
                output_index=index, summary_index=si, part=dict(part)),
        ]

    # -- events of a tool's own items (tools/: each kind makes its items' events through these) ----

    def event(self, kind: type[BaseModel], type_: str, **fields: Any) -> Event:
        """An event of SDK class ``kind``, numbered now."""
        return _ev(kind, type=type_, sequence_number=self._n(), **fields)

    def item_event(self, kind: type[BaseModel], type_: str, index: int, **fields: Any) -> Event:
        """An event about the output item at ``index``: its ``item_id`` and ``output_index`` filled in."""
        return _ev(kind, type=type_, sequence_number=self._n(), item_id=self.output[index]["id"], output_index=index,
                   **fields)

    # -- errors ------------------------------------------------------------------------------

    def error(self, code: str, message: str) -> Event:
        return _ev(T.ResponseErrorEvent, type="error", sequence_number=self._n(), code=code, message=message,
                   param=None)


def _part_logprobs(tokens: list[Any]) -> list[dict[str, Any]]:
    """A backend's token log probabilities (chat completions' ``logprobs.content``) as the output
    text part's ``Logprob`` (``ResponseOutputText``): token, bytes, logprob and the top tokens."""
    def entry(t: Any) -> dict[str, Any]:
        return {"token": t.get("token", ""), "bytes": t.get("bytes") or list(t.get("token", "").encode()),
                "logprob": t.get("logprob", 0.0)}

    return [{**entry(t), "top_logprobs": [entry(top) for top in t.get("top_logprobs") or ()]} for t in tokens]


def _event_logprobs(tokens: Any) -> list[dict[str, Any]]:
    """The same tokens as a text event's ``Logprob``: token, logprob and the top tokens (no bytes)."""
    return [{"token": t.get("token", ""), "logprob": t.get("logprob", 0.0),
             "top_logprobs": [{"token": top.get("token", ""), "logprob": top.get("logprob", 0.0)}
                              for top in t.get("top_logprobs") or ()]} for t in tokens]


def new_response_id() -> str:
    return new_id("resp")
