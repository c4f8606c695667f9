"""A backend's refusal of a request, with its reason, in a form the engine can act on.

A backend that answers 4xx (or a chat template's error, which llama.cpp answers with 500) has
refused this request, not failed: the reason is the client's to read (a too-long input, a value
the model does not take), so it is passed on in OpenAI's error shape, never a bare status. Two
reasons the engine can act on first: a chat template's rule (``chat_templates``: reshape, retry)
and a context-length overflow (with ``truncation: "auto"``: drop the oldest items, retry).
Credentials the backend refuses (401, 403) and an upstream model it does not serve (404) are the
operator's to fix, and a 5xx is the backend's own failure: those stay server errors, their text in
the log only.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from rejoinder.backends.chat_templates import Rule, rule_for
from rejoinder.errors import APIError, BackendError, InvalidRequest, Overloaded

Reason = Literal["template", "context_length", "other"]

MESSAGE_LIMIT = 2000  # characters of a backend's message passed on

# Context-length errors, as OpenAI, vLLM, llama.cpp and the embedded model word them.
_CONTEXT_LENGTH = re.compile(
    r"maximum context length|context_length_exceeded|exceeds? the available context size|"
    r"exceed_context_size|context window of \d+|too many tokens|prompt is too long",
    re.IGNORECASE,
)
_WINDOW = re.compile(r"(?:maximum context length is|context window of|context size of)\s*(\d+)", re.IGNORECASE)
_PROMPT = re.compile(
    r"(\d+) in the messages|resulted in (\d+) tokens|has (\d+) input tokens|input is (\d+) tokens",
    re.IGNORECASE,
)


class BackendRefusal(BackendError):
    """The backend refused the request before answering anything.

    ``message`` is the backend's own; ``code`` is the ``response.error`` code (``invalid_prompt``,
    or ``rate_limit_exceeded`` for a 429). ``window`` and ``prompt_tokens`` are what a
    context-length error says of the model's context window and of the request's size."""

    def __init__(self, message: str, status: int, reason: Reason = "other", *, rule: Rule | None = None,
                 window: int | None = None, prompt_tokens: int | None = None, upstream_code: str | None = None):
        super().__init__(message, "rate_limit_exceeded" if status == 429 else "invalid_prompt", status)
        self.reason = reason
        self.rule = rule
        self.window = window
        self.prompt_tokens = prompt_tokens
        self.upstream_code = upstream_code

    def api_error(self) -> APIError:
        """The refusal as the client's HTTP error, for a request whose response does not exist yet."""
        if self.status == 429:
            return Overloaded(self.message)
        if self.reason == "context_length":
            return InvalidRequest(self.message, param="input", code="context_length_exceeded")
        return InvalidRequest(self.message, code=self.upstream_code)


def context_length_exceeded(message: str, window: int | None = None,
                            prompt_tokens: int | None = None) -> BackendRefusal:
    return BackendRefusal(message, 400, "context_length", window=window, prompt_tokens=prompt_tokens)


def _error_object(payload: Any) -> dict[str, Any]:
    """The ``error`` object of the usual shapes: OpenAI's, vLLM's (old and new), llama.cpp's,
    Ollama's (``{"error": "text"}``), FastAPI's ``detail``."""
    if not isinstance(payload, dict):
        return {}
    error = payload.get("error")
    if isinstance(error, dict):
        return error
    if isinstance(error, str):
        return {"message": error}
    if isinstance(payload.get("message"), str):
        return payload
    if isinstance(payload.get("detail"), str):
        return {"message": payload["detail"]}
    return {}


def _number(match: re.Match[str] | None) -> int | None:
    if match is None:
        return None
    return next(int(g) for g in match.groups() if g is not None)


def _clean(message: str) -> str:
    """llama.cpp puts the template's source around a Jinja error: keep the error itself."""
    if "Jinja Exception:" in message:
        message = message[message.rindex("Jinja Exception:"):]
    message = message.strip()
    return message if len(message) <= MESSAGE_LIMIT else message[:MESSAGE_LIMIT] + "..."


def from_status(status: int, body: bytes) -> BackendError:
    """The error a backend's non-2xx answer stands for (its body read, at most a few KB)."""
    try:
        payload: Any = json.loads(body) if body else None
    except ValueError:
        payload = None
    error = _error_object(payload)
    raw = error.get("message") if isinstance(error.get("message"), str) else None
    if raw is None and body and payload is None:
        text = body.decode("utf-8", "replace").strip()
        if len(text) <= 300 and text.isprintable() and not text.startswith("<"):
            raw = text  # a plain-text reason; not an HTML page or a stream
    message = _clean(raw or "")
    code = error.get("code") if isinstance(error.get("code"), str) else None
    kind = error.get("type") if isinstance(error.get("type"), str) else ""
    rule = rule_for(message) if message else None
    if rule is not None:
        return BackendRefusal(message, 400, "template", rule=rule, upstream_code=code)
    if code == "context_length_exceeded" or kind == "exceed_context_size_error" or _CONTEXT_LENGTH.search(message):
        window = error.get("n_ctx") if isinstance(error.get("n_ctx"), int) else _number(_WINDOW.search(message))
        prompt = (error.get("n_prompt_tokens") if isinstance(error.get("n_prompt_tokens"), int)
                  else _number(_PROMPT.search(message)))
        return context_length_exceeded(message or "The input is longer than the model's context window.",
                                       window, prompt)
    if status in (401, 403):
        return BackendError(f"The model backend refused this server's credentials (HTTP {status}); "
                            "the server's operator must fix its API key.", "server_error", status)
    if status == 404:
        return BackendError("The model backend does not serve the configured model (HTTP 404).",
                            "server_error", status)
    if status == 429:
        return BackendRefusal(message or "The model backend is rate limited; retry later.", 429)
    if 400 <= status < 500:
        return BackendRefusal(message or f"The model backend refused the request (HTTP {status}) without a "
                              "reason.", 400, upstream_code=code)
    return BackendError(f"The model backend failed (HTTP {status}).", "server_error", status)


def from_stream_error(error: Any) -> BackendError:
    """An ``{"error": ...}`` payload in place of the first chunk (llama.cpp before it learned to send
    its status): the same reasons as a status answer."""
    code = error.get("code") if isinstance(error, dict) else None
    return from_status(code if isinstance(code, int) else 500, json.dumps({"error": error}).encode())
