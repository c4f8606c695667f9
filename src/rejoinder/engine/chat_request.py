"""The upstream chat-completions body for one inference step."""

from __future__ import annotations

from typing import Any

from rejoinder.backends.base import ModelRoute


def response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    fmt = (text or {}).get("format") or {"type": "text"}
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if fmt["type"] == "json_schema":
        schema: dict[str, Any] = {"name": fmt["name"], "schema": fmt["schema"]}
        if fmt.get("strict") is not None:
            schema["strict"] = fmt["strict"]
        if fmt.get("description"):
            schema["description"] = fmt["description"]
        return {"type": "json_schema", "json_schema": schema}
    return None


def replay_reasoning(messages: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """Earlier reasoning (``reasoning_content`` on assistant messages, engine/context.py) the way
    the backend takes it: as is, renamed ``reasoning``, inlined in ``<think>`` tags, or dropped."""
    if mode == "reasoning_content" or not any("reasoning_content" in m for m in messages):
        return messages
    out = []
    for m in messages:
        if "reasoning_content" not in m:
            out.append(m)
            continue
        m = dict(m)
        text = m.pop("reasoning_content")
        if mode == "reasoning":
            m["reasoning"] = text
        elif mode == "think_tags":
            m["content"] = f"<think>\n{text}\n</think>\n\n{m.get('content') or ''}"
        out.append(m)
    return out


VERBOSITY_LINES = {"low": "Keep your answers short: say only what is needed.",
                   "high": "Give thorough, detailed answers."}


def with_verbosity(messages: list[dict[str, Any]], params: dict[str, Any], route: ModelRoute) -> list[dict[str, Any]]:
    """``text.verbosity`` low or high, for a backend without a parameter for it: a line at the end of
    the first system message (one is added when there is none); medium is what models do anyway."""
    line = VERBOSITY_LINES.get(str((params.get("text") or {}).get("verbosity")))
    if line is None or route.verbosity != "instruction":
        return messages
    if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{line}"}, *messages[1:]]
    return [{"role": "system", "content": line}, *messages]


def chat_body(
    route: ModelRoute,
    params: dict[str, Any],
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    tool_choice: Any,
) -> dict[str, Any]:
    """Only parameters the client set are sent, so upstream defaults (and recordings) stay stable."""
    body: dict[str, Any] = {
        "model": route.upstream_model,
        "messages": with_verbosity(replay_reasoning(messages, route.reasoning_replay), params, route),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if tools:
        body["tools"] = tools
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
        if params.get("parallel_tool_calls") is False:
            body["parallel_tool_calls"] = False
    for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        if params.get(key) is not None:
            body[key] = params[key]
    if "message.output_text.logprobs" in (params.get("include") or ()):
        body["logprobs"] = True
        if params.get("top_logprobs"):
            body["top_logprobs"] = params["top_logprobs"]
    verbosity = (params.get("text") or {}).get("verbosity")
    if route.verbosity == "param" and verbosity is not None:
        body["verbosity"] = verbosity
    if route.cache_hints:  # prompt-cache hints, to backends that take them (OpenAI's own take both)
        for key in ("prompt_cache_key", "prompt_cache_retention"):
            if params.get(key) is not None:
                body[key] = params[key]
    if params.get("max_output_tokens") is not None:
        body[route.max_tokens_param] = params["max_output_tokens"]
    fmt = response_format(params.get("text"))
    if fmt is not None:
        body["response_format"] = fmt
    effort = (params.get("reasoning") or {}).get("effort")
    if effort:
        body["reasoning_effort"] = effort
    return body
