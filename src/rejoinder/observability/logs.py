"""Log output: text (the default) or one JSON object per line (``REJOINDER_LOG_FORMAT=json``).

The lines the server writes about a request carry its request id (the ``x-request-id`` the client
got): the access line, and the engine's lines about the response it runs. The id is passed
explicitly, in the request's ``RequestContext`` and the run's plan, and a line gets it through
``for_request`` (a ``LoggerAdapter``), never from task-local state: one WebSocket connection serves
many requests in one task. Library lines (aiohttp, SQLAlchemy) carry none.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]

ACCESS_LOGGER = "rejoinder.access"

# Attributes every LogRecord has; anything else on a record was passed in ``extra`` (uvicorn's
# ``color_message`` is its message again, with terminal colours).
_STANDARD = (frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
             | {"message", "asctime", "taskName", "color_message"})


class RequestIdFilter(logging.Filter):
    """Every record has a ``request_id``: the one ``for_request`` gave it, or None."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = None
        return True


class _RequestLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def for_request(logger: logging.Logger, request_id: str | None) -> logging.LoggerAdapter:  # type: ignore[type-arg]
    """``logger`` whose lines carry ``request_id`` (the request's, from its ``RequestContext``)."""
    return _RequestLog(logger, {"request_id": request_id})


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...extra fields, "exception"?}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """The classic line; lines logged inside a request end with its id (access lines name it already)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id and record.name != ACCESS_LOGGER:
            text += f" request_id={request_id}"
        return text


def configure_logging(log_format: LogFormat, level: str) -> None:
    """The root logger writes to stderr in ``log_format``; warnings and uncaught exceptions too, so
    in JSON every line of the process's output is one object."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    if log_format == "json":
        sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("rejoinder").critical("uncaught exception", exc_info=(kind, exc, tb))


# ggml's log levels (NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5): warnings and errors are kept.
_LLAMA_LEVELS = {3: logging.WARNING, 4: logging.ERROR}
_llama_callback: object = None  # kept alive: llama.cpp holds only a C pointer to it


def route_llama_logs() -> None:
    """llama.cpp's own messages (llama-cpp-python prints them to stderr) go through logging instead,
    as the ``llama_cpp`` logger's warnings and errors: a JSON log stays one object per line. Called
    once llama_cpp is imported, which installs its own printer."""
    global _llama_callback
    import llama_cpp

    native = logging.getLogger("llama_cpp")

    @llama_cpp.llama_log_callback  # type: ignore[misc]
    def callback(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        if level in _LLAMA_LEVELS and (message := text.decode("utf-8", "replace").strip()):
            native.log(_LLAMA_LEVELS[level], message)

    _llama_callback = callback
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
