"""What strict chat templates demand of a transcript, and the reshapes that satisfy them.

Many open models' chat templates refuse transcripts that OpenAI accepts: Mistral's instruct
templates require user and assistant turns to alternate (tool calls and tool results aside),
Gemma's refuse a system message, Mistral's take only 9-character tool call ids. Which template a
backend runs cannot be asked, so the rules are learned from the errors the templates raise
(``KNOWN_ERRORS``, the one table of them) or named up front in a model's configuration
(``template_rules``). Every reshape keeps every text, in order; only what goes upstream changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Literal

Rule = Literal["alternate_roles", "no_system_role", "short_call_ids"]
RULES: tuple[Rule, ...] = ("alternate_roles", "no_system_role", "short_call_ids")  # the order they apply in

# A template's error (a fragment of its message, lower case) -> the rule that avoids it. The texts
# are the templates' own ``raise_exception`` messages, as vLLM (HTTP 400), llama.cpp (HTTP 500,
# "Jinja Exception: ...") and OpenAI (HTTP 400) pass them on.
KNOWN_ERRORS: tuple[tuple[str, Rule], ...] = (
    # Mistral v0.1-v0.3, Mixtral, Llama 2, Gemma: "After the optional system message, conversation
    # roles must alternate user/assistant/user/assistant/..."; Mistral Small / Devstral: "... must
    # alternate user and assistant roles except for tool calls and results."
    ("roles must alternate", "alternate_roles"),
    # Mistral v0.3, a system message anywhere but first.
    ("only user and assistant roles are supported", "alternate_roles"),
    # Gemma 1 and 2 (and templates copied from them).
    ("system role not supported", "no_system_role"),
    # OpenAI's reasoning models of 2024: "Unsupported value: 'messages[0].role' does not support
    # 'system' with this model."
    ("does not support 'system'", "no_system_role"),
    # Mistral v0.3 and its tool-calling successors.
    ("tool call ids should be alphanumeric strings with length 9", "short_call_ids"),
)


def rule_for(message: str) -> Rule | None:
    """The rule a template error message asks for, or None when it is no known template error."""
    text = message.lower()
    for fragment, rule in KNOWN_ERRORS:
        if fragment in text:
            return rule
    return None


def reshape(messages: list[dict[str, Any]], rules: Iterable[str]) -> list[dict[str, Any]]:
    """``messages`` as templates bound by ``rules`` accept them (a new list; the input is untouched)."""
    wanted = set(rules)
    if not wanted:
        return messages
    out = [dict(m) for m in messages]
    if "alternate_roles" in wanted:
        out = _alternate(out)
    if "no_system_role" in wanted:
        out = _no_system(out)
    if "short_call_ids" in wanted:
        out = _short_call_ids(out)
    return out


# -- contents ------------------------------------------------------------------------------------


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)


def join(first: Any, second: Any) -> Any:
    """Two message contents as one: text joined by a blank line, other parts kept in order."""
    if not first:
        return second if second is not None else ""
    if not second:
        return first
    if isinstance(first, str) and isinstance(second, str):
        return f"{first}\n\n{second}"
    return [*_parts(first), {"type": "text", "text": "\n\n"}, *_parts(second)]


def _aside(message: dict[str, Any]) -> bool:
    """Tool calls and tool results: alternation templates leave them out of the count."""
    return message["role"] == "tool" or bool(message.get("tool_calls"))


# -- the reshapes ---------------------------------------------------------------------------------


def _alternate(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One optional system message first, then user and assistant turns in alternation.

    Consecutive messages of one role merge; a system or developer message that is not first
    joins the next user message (or, with none after it, the leading system message). Where two
    turns of one role are separated only by tool calls and results (the client spoke while a tool
    ran), an empty turn of the other role goes between them: the only way to keep the order.
    """
    system: dict[str, Any] | None = None
    late: Any = None  # system text waiting for the next user message
    body: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "system":
            if system is None and not body:
                system = m
            elif not body and system is not None:
                system["content"] = join(system["content"], m["content"])
            else:
                late = join(late, m["content"])
            continue
        if m["role"] == "user" and late is not None:
            m["content"], late = join(late, m["content"]), None
        previous = body[-1] if body else None
        if previous is not None and not _aside(m) and not _aside(previous) and previous["role"] == m["role"]:
            previous["content"] = join(previous["content"], m["content"])
            continue
        body.append(m)
    if late is not None:
        if system is None:
            system = {"role": "system", "content": late}
        else:
            system["content"] = join(system["content"], late)
    out: list[dict[str, Any]] = [system] if system is not None else []
    expected = "user"
    for m in body:
        if not _aside(m):
            if m["role"] != expected:
                out.append({"role": expected, "content": ""})
            expected = "assistant" if m["role"] == "user" else "user"
        out.append(m)
    return out


def _no_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """No system role: the leading system text opens the first user message; a later one joins the
    next user message, or becomes a user message where it stands when none follows."""
    out: list[dict[str, Any]] = []
    waiting: Any = None
    at = 0  # where the waiting text stood
    for m in messages:
        if m["role"] == "system":
            if waiting is None:
                at = len(out)
            waiting = join(waiting, m["content"])
            continue
        if m["role"] == "user" and waiting is not None:
            m["content"], waiting = join(waiting, m["content"]), None
        out.append(m)
    if waiting is not None:
        out.insert(at, {"role": "user", "content": waiting})
    return out


def short_call_id(call_id: str) -> str:
    """A 9-character alphanumeric id for ``call_id``, the same every time (ids already of that form
    are kept)."""
    if len(call_id) == 9 and call_id.isascii() and call_id.isalnum():
        return call_id
    digest = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = []
    for _ in range(9):
        digest, index = divmod(digest, 62)
        out.append(alphabet[index])
    return "".join(out)


def _short_call_ids(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for m in messages:
        if m.get("tool_calls"):
            m["tool_calls"] = [{**c, "id": short_call_id(c["id"])} for c in m["tool_calls"]]
        if m["role"] == "tool":
            m["tool_call_id"] = short_call_id(m["tool_call_id"])
    return messages
