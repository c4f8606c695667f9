"""``response.steer``: user input for a response running on this socket, as the SDK defines it.

An accepted steer (``response.steer.accepted``) is owned by the server until a successor response
commits it (that response's ``response.created``):

- the target ends with a final answer: a successor starts at once on the target's lane, with the
  target's settings, ``previous_response_id`` = the target and the queued input;
- the target ends waiting for the client (a call to run, an approval): ``response.steer.pending``
  with the ``required_input`` stubs follows its terminal event, and the queued input is prepended
  to the input of the next create that continues it (the transcript puts a message typed while a
  tool ran after the tool's result: engine/context.py);
- the target fails or is cancelled: ``response.steer.failed`` (``response_not_active``) returns
  the input.

A running response is never cut short at a "safe boundary" (``incomplete``/``steered``): it runs to
its end and the successor follows. Steering numbers its events with a counter of the connection
(they are no response's events). Responses in a conversation or with ``context_management`` are
not steered (``steering_not_supported``), as OpenAI documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rejoinder.api.items import validate_item
from rejoinder.errors import APIError
from rejoinder.ids import new_id

# Output items the client answers; the stub names the input item that answers each.
_ANSWERS = {"function_call": "function_call_output", "custom_tool_call": "custom_tool_call_output",
            "shell_call": "shell_call_output", "apply_patch_call": "apply_patch_call_output",
            "local_shell_call": "local_shell_call_output", "computer_call": "computer_call_output"}


@dataclass
class Target:
    """A response running on this socket that may be steered."""

    body: dict[str, Any]  # its create's body: a successor inherits its settings
    stream_id: str | None
    steerable: bool
    steers: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)  # (steer id, input items)


class SteerFailed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def steer_input(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The steer's input as user message items, validated (``invalid_input`` otherwise)."""
    unknown = set(event) - {"type", "previous_response_id", "input"}
    if unknown:
        raise SteerFailed("invalid_input", f"Unknown parameter: '{sorted(unknown)[0]}'.")
    value = event.get("input")
    if isinstance(value, str) and value:
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise SteerFailed("invalid_input", "'input' must be a non-empty string or a non-empty array of user messages.")
    items = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or item.get("role") != "user" or item.get("type", "message") != "message":
            raise SteerFailed("invalid_input", f"input[{i}]: steering accepts only messages with the 'user' role.")
        try:
            items.append(validate_item({**item, "type": "message"}, f"input[{i}]"))
        except APIError as exc:
            raise SteerFailed("invalid_input", exc.message) from None
    return items


class Steering:
    def __init__(self, max_pending: int):
        self.max_pending = max_pending
        self.targets: dict[str, Target] = {}  # running responses, by id
        self.pending: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {}  # ended, waiting for the client
        self.seq = -1

    def _n(self) -> int:
        self.seq += 1
        return self.seq

    def started(self, response_id: str, body: dict[str, Any], stream_id: str | None, steerable: bool) -> None:
        self.targets[response_id] = Target(body, stream_id, steerable)

    def steer(self, event: dict[str, Any], known: set[str]) -> tuple[dict[str, Any], str | None]:
        """Accept a steer: the ``response.steer.accepted`` event and its lane. ``known``: responses
        that ran on this socket (``response_already_completed`` rather than ``response_not_found``)."""
        target_id = event.get("previous_response_id")
        items = steer_input(event)
        if not isinstance(target_id, str):
            raise SteerFailed("invalid_input", "Missing required parameter: 'previous_response_id'.")
        target = self.targets.get(target_id)
        if target is None:
            if target_id in known or target_id in self.pending:
                raise SteerFailed("response_already_completed", f"Response '{target_id}' has already completed.")
            raise SteerFailed("response_not_found", f"Response '{target_id}' is not running on this connection.")
        if not target.steerable:
            raise SteerFailed("steering_not_supported", "Responses in a conversation or with context_management "
                                                        "cannot be steered.")
        if len(target.steers) >= self.max_pending:
            raise SteerFailed("too_many_pending_steers", f"At most {self.max_pending} steering inputs may wait "
                                                         "for one response.")
        steer_id = new_id("steer")
        target.steers.append((steer_id, items))
        accepted = {"type": "response.steer.accepted", "sequence_number": self._n(),
                    "steer": {"id": steer_id, "previous_response_id": target_id}}
        return accepted, target.stream_id

    def failed(self, event: dict[str, Any], failure: SteerFailed, steer_id: str | None = None) -> dict[str, Any]:
        steer: dict[str, Any] = {"input": event.get("input"), "previous_response_id": event.get("previous_response_id")}
        if steer_id:
            steer["id"] = steer_id
        return {"type": "response.steer.failed", "sequence_number": self._n(), "steer": steer,
                "error": {"type": "invalid_request_error", "code": failure.code, "message": failure.message}}

    def ended(self, response: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The target ended: the events for its steers, and the successor's create body, if any."""
        target = self.targets.pop(response["id"], None)
        if target is None or not target.steers:
            return [], None
        rid = response["id"]
        if response["status"] not in ("completed", "incomplete"):
            failure = SteerFailed("response_not_active", f"Response '{rid}' ended {response['status']}.")
            return [self.failed({"input": items, "previous_response_id": rid}, failure, sid)
                    for sid, items in target.steers], None
        stubs = [{"type": _ANSWERS[i["type"]], "call_id": i["call_id"], **({"name": i["name"]} if "name" in i else {})}
                 for i in response["output"] if i.get("type") in _ANSWERS]
        stubs += [{"type": "mcp_approval_response", "approval_request_id": i["id"]}
                  for i in response["output"] if i.get("type") == "mcp_approval_request"]
        if stubs:
            self.pending[rid] = target.steers
            return [{"type": "response.steer.pending", "sequence_number": self._n(),
                     "reason": "waiting_for_required_input", "required_input": stubs,
                     "steer": {"id": sid, "previous_response_id": rid}}
                    for sid, _ in target.steers], None
        successor = {**target.body, "previous_response_id": rid,
                     "input": [item for _, items in target.steers for item in items]}
        return [], successor

    def prepend(self, body: dict[str, Any]) -> dict[str, Any]:
        """A create continuing a response with pending steers: their input first, in order."""
        previous = body.get("previous_response_id")
        steers = self.pending.pop(previous, None) if isinstance(previous, str) else None
        if not steers:
            return body
        given = body.get("input", [])
        given = [{"type": "message", "role": "user", "content": given}] if isinstance(given, str) else list(given)
        return {**body, "input": [*(item for _, items in steers for item in items), *given]}
