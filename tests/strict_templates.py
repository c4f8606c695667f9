"""The checks strict backends make of a chat transcript, with the errors they really answer.

- ``openai_tool_order``: OpenAI's chat completions (HTTP 400, OpenAI's error shape): an assistant
  message's tool calls must be followed by a tool message for each of them, and a tool message
  must answer a call of the assistant message before it.
- ``mistral_v03``: Mistral-7B-Instruct-v0.3's chat template, as vLLM runs it (HTTP 400, vLLM's
  error shape): an optional system message first, then user and assistant alternating, tool-call
  and tool messages aside; 9-character tool call ids.
- ``gemma``: Gemma 2's chat template, as llama.cpp's server runs it (HTTP 500, a Jinja exception
  in a ``server_error``): no system role, and every message alternating user/assistant.

Each returns None for a transcript it accepts, else (status, body) as that server answers.
"""

from __future__ import annotations

from typing import Any

Refusal = tuple[int, dict[str, Any]] | None

TOOL_CALLS_UNANSWERED = ("An assistant message with 'tool_calls' must be followed by tool messages responding to "
                         "each 'tool_call_id'. The following tool_call_ids did not have response messages: {ids}")
TOOL_WITHOUT_CALL = ("Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                     "with 'tool_calls'.")
MISTRAL_ALTERNATE = ("After the optional system message, conversation roles must alternate "
                     "user/assistant/user/assistant/...")
MISTRAL_ROLES = ("Only user and assistant roles are supported, with the exception of an initial optional "
                 "system message!")
MISTRAL_IDS = "Tool call IDs should be alphanumeric strings with length 9!"
GEMMA_SYSTEM = "System role not supported"
GEMMA_ALTERNATE = "Conversation roles must alternate user/assistant/user/assistant/..."


def _openai(message: str, param: str | None) -> Refusal:
    return 400, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


def _vllm(message: str) -> Refusal:
    return 400, {"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}}


def _llama_cpp_jinja(message: str) -> Refusal:
    text = ("\n------------\nWhile executing CallExpression at line 1, column 72 in source:\n"
            "...{{ raise_exception('" + message[:40] + "...\n       ^\nError: Jinja Exception: " + message)
    return 500, {"error": {"code": 500, "message": text, "type": "server_error"}}


def openai_tool_order(body: dict[str, Any]) -> Refusal:
    messages = body["messages"]
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            j = i - 1
            while j >= 0 and messages[j]["role"] == "tool":
                j -= 1
            calls = {c["id"] for c in messages[j].get("tool_calls") or []} if j >= 0 else set()
            if m.get("tool_call_id") not in calls:
                return _openai(TOOL_WITHOUT_CALL, f"messages.[{i}].role")
        if m.get("tool_calls"):
            answered = set()
            for n in messages[i + 1:]:
                if n["role"] != "tool":
                    break
                answered.add(n["tool_call_id"])
            missing = [c["id"] for c in m["tool_calls"] if c["id"] not in answered]
            if missing:
                return _openai(TOOL_CALLS_UNANSWERED.format(ids=", ".join(missing)), f"messages.[{i}].role")
    return None


def mistral_v03(body: dict[str, Any]) -> Refusal:
    messages = body["messages"]
    loop = messages[1:] if messages and messages[0]["role"] == "system" else messages
    index = 0
    for m in loop:  # the template's first pass: alternation, tool calls and results aside
        if not (m["role"] in ("tool", "tool_results") or m.get("tool_calls") is not None):
            if (m["role"] == "user") != (index % 2 == 0):
                return _vllm(MISTRAL_ALTERNATE)
            index += 1
    for m in loop:  # the second: rendering
        if m["role"] == "user" or (m["role"] == "assistant" and m.get("tool_calls") is None):
            continue
        if m.get("tool_calls") is not None:
            if any(len(c.get("id") or "") != 9 for c in m["tool_calls"]):
                return _vllm(MISTRAL_IDS)
        elif m["role"] == "tool":
            if len(m.get("tool_call_id") or "") != 9:
                return _vllm(MISTRAL_IDS)
        else:
            return _vllm(MISTRAL_ROLES)
    return None


def gemma(body: dict[str, Any]) -> Refusal:
    messages = body["messages"]
    if messages and messages[0]["role"] == "system":
        return _llama_cpp_jinja(GEMMA_SYSTEM)
    for i, m in enumerate(messages):
        if (m["role"] == "user") != (i % 2 == 0):
            return _llama_cpp_jinja(GEMMA_ALTERNATE)
    return None


def both(*checks: Any) -> Any:
    """Every check, in order: the first refusal."""
    def check(body: dict[str, Any]) -> Refusal:
        for one in checks:
            refused = one(body)
            if refused is not None:
                return refused
        return None
    return check
