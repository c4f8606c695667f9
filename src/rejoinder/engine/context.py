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

from typing import Any

from rejoinder.errors import InvalidRequest
from rejoinder.item_types import (
    ItemType,
    ReplayCall,
    Replayed,
    ReplayMessage,
    ReplayOutput,
    ReplayScope,
    missing_output,
    orphan_output,
)


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

    def __init__(self, scope: ReplayScope, item_types: dict[str, ItemType], unsealed: dict[str, str] | None = None):
        self.scope = scope
        self.item_types = item_types
        self.unsealed = unsealed or {}  # reasoning text of items that carry only their sealed blob
        self.reasoning: list[str] = []  # reasoning waiting for the assistant message it led to
        self.messages: list[dict[str, Any]] = []
        self.step: _Step | None = None  # invariant: a step with no result missing is still open
        self.seen: set[str] = set()  # ids of calls the client answers, in the client's order

    def feed_reasoning(self, item: dict[str, Any]) -> None:
        """A reasoning item goes back with the assistant message that follows it (its
        ``reasoning_content``; ``chat_request.py`` shapes it for the backend)."""
        text = reasoning_text(item) or self.unsealed.get(item.get("id") or "", "")
        if text:
            self.reasoning.append(text)

    def _with_reasoning(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.reasoning:
            earlier = message.get("reasoning_content")
            message["reasoning_content"] = "\n\n".join([earlier, *self.reasoning] if earlier else self.reasoning)
            self.reasoning = []
        return message

    def feed(self, item: dict[str, Any]) -> None:
        entry = self.item_types.get(item.get("type", "message"))
        form = entry.replay(item, self.scope) if entry is not None else None
        step = self.step
        if isinstance(form, ReplayMessage):
            if step is not None:
                if step.missing:
                    step.open = False
                    step.held.append(item)
                    return
                self._close()
            if form.message.get("role") == "assistant":
                self.messages.append(self._with_reasoning(dict(form.message)))
            else:
                self.reasoning = []  # reasoning no answer followed stays out
                self.messages.append(form.message)
        elif isinstance(form, ReplayOutput):
            call_id = form.call_id
            if call_id not in self.seen:
                raise orphan_output(call_id)
            if step is not None and step.results.get(call_id, "") is None:
                step.results[call_id] = form.text
                step.missing -= 1
                step.open = False
                if not step.missing:
                    self._close()
            elif step is not None and step.missing:
                step.held.append(item)  # its call is among the held items, or it answers twice
            else:
                self._close()  # an output for a call already answered: the first one answered it
        elif isinstance(form, ReplayCall):
            if form.result is None:
                self.seen.add(form.call_id)
            if step is None:
                step = self._new_step()
            elif not step.open:
                step.held.append(item)  # it waits for the outputs of the calls before it
                return
            self._add_call(step, form)

    def _new_step(self) -> _Step:
        """Calls made in the same turn as a text answer belong to that assistant message."""
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "assistant" and not last.get("tool_calls"):
            last["tool_calls"] = []
            message = last
        else:
            message = {"role": "assistant", "content": None, "tool_calls": []}
            self.messages.append(message)
        self._with_reasoning(message)
        self.step = _Step(message)
        return self.step

    def _add_call(self, step: _Step, call: ReplayCall) -> None:
        call_id, result = call.call_id, call.result
        if call_id in step.results:
            return  # the same call twice in one turn: it is one call
        step.message["tool_calls"].append(
            {"id": call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments or "{}"}})
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
                raise missing_output(call_id)
            self._close()
        return self.messages


def _message(item: dict[str, Any]) -> dict[str, Any]:
    role = item.get("role", "user")
    if role == "assistant":
        return {"role": "assistant", "content": _text_parts(item.get("content"))}
    return {"role": "system" if role == "developer" else role, "content": _user_content(item.get("content", ""))}


def replay_message(item: dict[str, Any], scope: ReplayScope) -> Replayed:
    """A message item's place in the transcript: the chat message it is."""
    return ReplayMessage(_message(item))


def build_messages(
    items: list[dict[str, Any]],
    instructions: str | None,
    aliases: dict[tuple[str, str], str] | None = None,
    item_types: dict[str, ItemType] | None = None,
    unsealed: dict[str, str] | None = None,
    reasoning_context: str | None = None,
) -> list[dict[str, Any]]:
    """Chat messages for ``items`` (the whole context, oldest first), with ``instructions`` first.

    ``aliases`` maps (namespace, tool name) to the name the model sees (``Toolset.aliases``);
    ``item_types``: the server's item table (``ToolKinds.item_types``; the built-in one by default).
    The items themselves are not changed: only what goes to the backend is ordered.
    Reasoning items go back as their assistant message's ``reasoning_content``: those since the
    last user message (``reasoning_context`` ``current_turn``, the default) or all of them
    (``all_turns``); ``unsealed`` holds the text of those that came only as a sealed blob.
    """
    if item_types is None:
        from rejoinder.tools.registry import BUILTIN  # the registry imports this module

        item_types = BUILTIN.item_types
    transcript = _Transcript(ReplayScope(aliases or {}), item_types, unsealed)
    if instructions:
        transcript.messages.append({"role": "system", "content": instructions})
    turn_start = 0
    if reasoning_context != "all_turns":
        turn_start = next((i for i in range(len(items) - 1, -1, -1) if items[i].get("type", "message") == "message"
                           and items[i].get("role") == "user"), 0)
    for i, item in enumerate(items):
        if item.get("type") == "reasoning":
            if i >= turn_start:
                transcript.feed_reasoning(item)
            continue
        transcript.feed(item)
    return transcript.finish()


def reasoning_text(item: dict[str, Any]) -> str:
    """A reasoning item's own text: its ``reasoning_text`` parts."""
    return "".join(p.get("text", "") for p in item.get("content") or () if p.get("type") == "reasoning_text")
