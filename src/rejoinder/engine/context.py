"""Turning Responses items into chat-completions messages: the transcript a backend reads.

Every item type a response can produce is accepted back. The transcript follows the rules every
backend shares (OpenAI's are the strictest): an assistant message's tool calls are followed
directly by all their results, in call order, and a message the client placed between a call and
its output (a person typing while a tool runs) follows those results. Nothing is dropped but a
second output for a call already answered. A call whose result is missing, or a result whose call
is unknown, is the client's error and is reported as a 400 before inference. What a stricter chat
template needs beyond this is ``backends/chat_templates.py``'s.
"""

from __future__ import annotations

import json
from typing import Any

from rejoinder.errors import InvalidRequest

DENIED_TEXT = "The user denied this tool call."


def _text_parts(content: Any) -> str:
    if isinstance(content, str):
        return content
    out = []
    for part in content or []:
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            out.append(part.get("text", ""))
        elif kind == "refusal":
            out.append(part.get("refusal", ""))
    return "".join(out)


def _user_content(content: Any) -> Any:
    """Input message content as chat content: a plain string when it is only text."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "input_image":
            url = part.get("image_url")
            if not url:
                raise InvalidRequest("input_image needs an image_url (file ids are not supported).",
                                     param="input", code="unsupported_value")
            image: dict[str, Any] = {"url": url}
            if part.get("detail") and part["detail"] != "auto":
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file":
            if not part.get("file_data"):
                raise InvalidRequest("input_file needs file_data (file ids and URLs are not supported).",
                                     param="input", code="unsupported_value")
            file: dict[str, Any] = {"file_data": part["file_data"]}
            if part.get("filename"):
                file["filename"] = part["filename"]
            parts.append({"type": "file", "file": file})
        elif kind == "refusal":
            parts.append({"type": "text", "text": part.get("refusal", "")})
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _tool_output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    return _text_parts(output) if isinstance(output, list) else json.dumps(output)


def _mcp_result_text(item: dict[str, Any]) -> str:
    if item.get("error"):
        err = item["error"]
        if isinstance(err, dict):
            return "Error: " + str(err.get("message") or err.get("content") or json.dumps(err))
        return f"Error: {err}"
    return item.get("output") or ""


class _Step:
    """One assistant message's tool calls, waiting for their results.

    Its calls are consecutive call items (a model's turn); results come in any order, and
    whatever the client placed among them waits in ``held`` until every call is answered."""

    __slots__ = ("held", "message", "missing", "open", "results")

    def __init__(self, message: dict[str, Any]):
        self.message = message
        self.results: dict[str, str | None] = {}  # call_id -> text, in call order
        self.missing = 0  # calls without a result yet
        self.open = True  # a next call item joins this step (no result or other item came yet)
        self.held: list[dict[str, Any]] = []


class _Transcript:
    """Chat messages under construction, to the rules every backend shares: an assistant message's
    tool calls are followed directly by their results, in call order; anything the client put
    between a call and its output follows the outputs, in the client's order."""

    def __init__(self, names: dict[tuple[str, str], str]):
        self.names = names
        self.messages: list[dict[str, Any]] = []
        self.step: _Step | None = None  # invariant: a step with no result missing is still open
        self.approvals: dict[str, dict[str, Any]] = {}
        self.seen: set[str] = set()  # function call ids, in the client's order

    def feed(self, item: dict[str, Any]) -> None:
        kind = item.get("type", "message")
        step = self.step
        if kind == "message":
            if step is not None:
                if step.missing:
                    step.open = False
                    step.held.append(item)
                    return
                self._close()
            self.messages.append(_message(item))
        elif kind == "function_call_output":
            call_id = item["call_id"]
            if call_id not in self.seen:
                raise InvalidRequest(f"No tool call found for function call output with call_id {call_id}.",
                                     param="input", code="invalid_function_call_output")
            if step is not None and step.results.get(call_id, "") is None:
                step.results[call_id] = _tool_output_text(item.get("output"))
                step.missing -= 1
                step.open = False
                if not step.missing:
                    self._close()
            elif step is not None and step.missing:
                step.held.append(item)  # its call is among the held items, or it answers twice
            else:
                self._close()  # an output for a call already answered: the first one answered it
        else:
            call = self._call_of(kind, item)
            if call is None:
                return  # mcp_list_tools, reasoning, approval requests and approvals, references
            if step is None:
                step = self._new_step()
            elif not step.open:
                step.held.append(item)  # it waits for the outputs of the calls before it
                return
            self._add_call(step, *call)

    def _call_of(self, kind: str, item: dict[str, Any]) -> tuple[str, str, str, str | None] | None:
        """(call id, name, arguments, result if the server has it) of an item that is a tool call."""
        if kind == "function_call":
            self.seen.add(item["call_id"])
            return item["call_id"], item["name"], item.get("arguments", ""), None
        if kind == "mcp_call":
            name = self.names.get((item["server_label"], item["name"]), item["name"])
            return item["id"], name, item.get("arguments", ""), _mcp_result_text(item)
        if kind == "mcp_approval_request":
            self.approvals[item["id"]] = item
        elif kind == "mcp_approval_response" and not item.get("approve"):
            request = self.approvals.get(item["approval_request_id"])
            if request is not None:
                name = self.names.get((request["server_label"], request["name"]), request["name"])
                return request["id"], name, request.get("arguments", ""), DENIED_TEXT
        return None

    def _new_step(self) -> _Step:
        """Calls made in the same turn as a text answer belong to that assistant message."""
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "assistant" and not last.get("tool_calls"):
            last["tool_calls"] = []
            message = last
        else:
            message = {"role": "assistant", "content": None, "tool_calls": []}
            self.messages.append(message)
        self.step = _Step(message)
        return self.step

    def _add_call(self, step: _Step, call_id: str, name: str, arguments: str, result: str | None) -> None:
        if call_id in step.results:
            return  # the same call twice in one turn: it is one call
        step.message["tool_calls"].append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments or "{}"}})
        step.results[call_id] = result
        if result is None:
            step.missing += 1

    def _close(self) -> None:
        """The open step, every call answered: its results, then what the client put among them."""
        step, self.step = self.step, None
        if step is None:
            return
        self.messages.extend({"role": "tool", "tool_call_id": call_id, "content": text}
                             for call_id, text in step.results.items())
        for item in step.held:
            self.feed(item)

    def finish(self) -> list[dict[str, Any]]:
        while self.step is not None:
            if self.step.missing:
                call_id = next(c for c, text in self.step.results.items() if text is None)
                raise InvalidRequest(f"No tool output found for function call {call_id}.", param="input",
                                     code="missing_function_call_output")
            self._close()
        return self.messages


def _message(item: dict[str, Any]) -> dict[str, Any]:
    role = item.get("role", "user")
    if role == "assistant":
        return {"role": "assistant", "content": _text_parts(item.get("content"))}
    return {"role": "system" if role == "developer" else role, "content": _user_content(item.get("content", ""))}


def build_messages(
    items: list[dict[str, Any]],
    instructions: str | None,
    model_name_for_tool: dict[tuple[str, str], str] | None = None,
) -> list[dict[str, Any]]:
    """Chat messages for ``items`` (the whole context, oldest first), with ``instructions`` first.

    ``model_name_for_tool`` maps (server_label, tool name) to the name the model sees for MCP tools.
    The items themselves are not changed: only what goes to the backend is ordered.
    """
    transcript = _Transcript(model_name_for_tool or {})
    if instructions:
        transcript.messages.append({"role": "system", "content": instructions})
    for item in items:
        transcript.feed(item)
    return transcript.finish()
