"""The few calls the engine makes to report what a response did; nothing else of observability.

``Telemetry`` belongs to the application (one per server). For each response the service asks it
for a ``RunObserver``, and the run calls:

- ``first_token()`` when the model's first output reaches the response (time to first token);
- ``with backend_call(route, params, usage):`` around each model call (its duration, tokens, span);
- ``with tool_call(kind, name, call_id):`` around each tool call the server executes, and
  ``tool_called(kind)`` for a call handed to the client;
- ``finished(status)`` once, when the response ends.

Each costs a few counter updates; spans are made only when tracing is configured.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rejoinder.observability import tracing
from rejoinder.observability.metrics import Metrics

if TYPE_CHECKING:
    from rejoinder.backends.base import ModelRoute
    from rejoinder.observability.spans import Span, Spans


class Telemetry:
    def __init__(self, metrics: Metrics, spans: Spans | None):
        self.metrics = metrics
        self.spans = spans

    @classmethod
    def from_environment(cls) -> Telemetry:
        tracer = tracing.tracer_from_environment()
        spans = None
        if tracer is not None:
            from rejoinder.observability.spans import Spans

            spans = Spans(tracer)
        return cls(Metrics(), spans)

    def run(self, model: str) -> RunObserver:
        """An observer for one response of ``model`` (a served model name), starting now."""
        return RunObserver(self, model)

    def lease_takeovers(self, count: int) -> None:
        if count:
            self.metrics.lease_takeovers.inc(count)

    def shutdown(self) -> None:
        if self.spans is not None:
            tracing.flush()
        self.metrics.process_exit()


class RunObserver:
    __slots__ = ("_started", "_waiting_first", "model", "telemetry")

    def __init__(self, telemetry: Telemetry, model: str):
        self.telemetry = telemetry
        self.model = model
        self._started = time.perf_counter()
        self._waiting_first = True

    def first_token(self) -> None:
        if self._waiting_first:
            self._waiting_first = False
            self.telemetry.metrics.model(self.model).ttft.observe(time.perf_counter() - self._started)

    def backend_call(self, route: ModelRoute, params: dict[str, Any], usage: dict[str, Any]) -> BackendCall:
        """``route.name`` labels the metrics (a served model); ``params`` is the validated request;
        ``usage`` is the response's running total."""
        return BackendCall(self.telemetry, route, params, usage)

    def tool_call(self, kind: str, name: str, call_id: str | None = None) -> ToolCall:
        return ToolCall(self.telemetry, kind, name, call_id)

    def tool_called(self, kind: str) -> None:
        self.telemetry.metrics.tool_calls.labels(kind).inc()

    def finished(self, status: str) -> None:
        self.telemetry.metrics.response_ended(self.model, status)


def _error_type(exc_type: type[BaseException] | None, exc: BaseException | None) -> str | None:
    if exc_type is None:
        return None
    code = getattr(exc, "code", None)  # a BackendError's spec code (server_error, rate_limit_exceeded...)
    return code if isinstance(code, str) else exc_type.__name__


class BackendCall:
    """One model call: its duration, the tokens it reported (the growth of the response's ``usage``
    while it ran) and, with tracing, its span."""

    __slots__ = ("_input", "_output", "_span", "_started", "route", "telemetry", "usage")

    def __init__(self, telemetry: Telemetry, route: ModelRoute, params: dict[str, Any], usage: dict[str, Any]):
        self.telemetry = telemetry
        self.route = route
        self.usage = usage
        self._input = usage["input_tokens"]
        self._output = usage["output_tokens"]
        spans = telemetry.spans
        self._span: Span | None = (spans.start_backend(route.name, route.upstream_model, params)
                                   if spans is not None else None)
        self._started = time.perf_counter()

    def __enter__(self) -> BackendCall:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        metrics = self.telemetry.metrics.model(self.route.name)
        metrics.backend_duration.observe(time.perf_counter() - self._started)
        input_tokens = self.usage["input_tokens"] - self._input
        output_tokens = self.usage["output_tokens"] - self._output
        # A counter only grows: a backend reporting negative usage (broken, or hostile) adds nothing.
        if input_tokens > 0:
            metrics.input_tokens.inc(input_tokens)
        if output_tokens > 0:
            metrics.output_tokens.inc(output_tokens)
        spans = self.telemetry.spans
        if spans is not None and self._span is not None:
            spans.end_backend(self._span, input_tokens, output_tokens, _error_type(exc_type, exc))


class ToolCall:
    """A tool call the server executes: counted, and with tracing a span current while it runs.
    ``failed(kind)`` marks a call that returned an error rather than raising one."""

    __slots__ = ("_error", "_span", "_token", "call_id", "kind", "name", "telemetry")

    def __init__(self, telemetry: Telemetry, kind: str, name: str, call_id: str | None):
        self.telemetry = telemetry
        self.kind = kind
        self.name = name
        self.call_id = call_id
        self._error: str | None = None
        self._span: Span | None = None
        self._token: object = None

    def failed(self, error_type: str) -> None:
        self._error = error_type

    def __enter__(self) -> ToolCall:
        self.telemetry.metrics.tool_calls.labels(self.kind).inc()
        spans = self.telemetry.spans
        if spans is not None:
            self._span, self._token = spans.start_tool(self.kind, self.name, self.call_id)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        spans = self.telemetry.spans
        if spans is not None and self._span is not None:
            spans.end_tool(self._span, self._token, _error_type(exc_type, exc) or self._error)
