"""Turning Responses items into chat-completions messages.

Every item type a response can produce is accepted back. Assistant tool calls always get their
tool result message (the backend rejects a call without one); a call whose result is missing, or a
result whose call is unknown, is the client's error and is reported as a 400 before inference.
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


class _Builder:
    """Chat messages under construction.

    Consecutive calls (function, MCP, denied approvals) share one assistant message, and the
    results of server-side calls wait until the run of calls ends, so every assistant
    ``tool_calls`` message is followed by exactly its tool messages, whatever mix of client-side
    and server-side calls a turn made.
    """

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.open_calls: dict[str, str] = {}  # call_id -> name, awaiting a function_call_output
        self._pending: list[dict[str, Any]] = []  # results of server-side calls in the current run

    def _assistant_for_calls(self) -> dict[str, Any]:
        """Calls made in the same turn as a text answer belong to that assistant message."""
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", [])
            return last
        msg: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": []}
        self.messages.append(msg)
        return msg

    def call(self, call_id: str, name: str, arguments: str) -> None:
        """A client-side call; its result comes later as a ``function_call_output``."""
        self._add_call(call_id, name, arguments)
        self.open_calls[call_id] = name

    def server_call(self, call_id: str, name: str, arguments: str, result: str) -> None:
        """A call whose result the server already has (MCP calls, denied approvals)."""
        self._add_call(call_id, name, arguments)
        self._pending.append({"role": "tool", "tool_call_id": call_id, "content": result})

    def _add_call(self, call_id: str, name: str, arguments: str) -> None:
        if self._pending and not self.open_calls:
            self.flush()  # a finished run of server-side calls: this call starts a new step
        self._assistant_for_calls()["tool_calls"].append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments or "{}"}}
        )

    def result(self, call_id: str, text: str) -> None:
        self.flush()
        self.open_calls.pop(call_id, None)
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": text})

    def flush(self) -> None:
        self.messages.extend(self._pending)
        self._pending = []

    def add(self, role: str, content: Any) -> None:
        self.flush()
        self.messages.append({"role": role, "content": content})


def build_messages(
    items: list[dict[str, Any]],
    instructions: str | None,
    model_name_for_tool: dict[tuple[str, str], str] | None = None,
) -> list[dict[str, Any]]:
    """Chat messages for ``items`` (the whole context, oldest first), with ``instructions`` first.

    ``model_name_for_tool`` maps (server_label, tool name) to the name the model sees for MCP tools.
    """
    names = model_name_for_tool or {}
    b = _Builder()
    if instructions:
        b.add("system", instructions)
    known_calls: set[str] = set()
    approval_requests: dict[str, dict[str, Any]] = {}
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role", "user")
            if role == "assistant":
                b.add("assistant", _text_parts(item.get("content")))
            else:
                b.add("system" if role == "developer" else role, _user_content(item.get("content", "")))
        elif kind == "function_call":
            b.call(item["call_id"], item["name"], item.get("arguments", ""))
            known_calls.add(item["call_id"])
        elif kind == "function_call_output":
            call_id = item["call_id"]
            if call_id not in known_calls:
                raise InvalidRequest(
                    f"No tool call found for function call output with call_id {call_id}.",
                    param="input", code="invalid_function_call_output",
                )
            if call_id not in b.open_calls:
                continue  # a second output for the same call: the first one answered it
            b.result(call_id, _tool_output_text(item.get("output")))
        elif kind == "mcp_call":
            name = names.get((item["server_label"], item["name"]), item["name"])
            b.server_call(item["id"], name, item.get("arguments", ""), _mcp_result_text(item))
        elif kind == "mcp_approval_request":
            approval_requests[item["id"]] = item
        elif kind == "mcp_approval_response":
            request = approval_requests.get(item["approval_request_id"])
            if request is not None and not item.get("approve"):
                name = names.get((request["server_label"], request["name"]), request["name"])
                b.server_call(request["id"], name, request.get("arguments", ""), DENIED_TEXT)
        # mcp_list_tools, reasoning, search calls, references: no chat message of their own
    b.flush()
    if b.open_calls:
        call_id = next(iter(b.open_calls))
        raise InvalidRequest(f"No tool output found for function call {call_id}.", param="input",
                             code="missing_function_call_output")
    return b.messages
