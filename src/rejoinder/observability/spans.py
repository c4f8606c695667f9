"""The spans Rejoinder makes, named and attributed as OpenTelemetry's semantic conventions say.

Imported only once tracing is configured (``tracing.py``): nothing here runs otherwise.

- The HTTP request: a ``SERVER`` span named ``{method} {route}``, continuing an incoming W3C
  ``traceparent`` (through the configured propagators).
- Each model backend call: a ``CLIENT`` span ``chat {model}`` with GenAI attributes
  (``gen_ai.operation.name = chat``, ``gen_ai.request.model``, ``gen_ai.usage.*_tokens``).
- Each tool call the server executes: ``execute_tool {tool}`` (``gen_ai.operation.name =
  execute_tool``, ``gen_ai.tool.name``), current while it runs, so the MCP SDK's spans nest in it.

A run's spans are children of the request's span through the context its tasks inherit.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

Span = trace.Span


class Spans:
    def __init__(self, tracer: Tracer):
        self.tracer = tracer

    # -- the HTTP request ---------------------------------------------------------------------

    def start_server(self, scope: MutableMapping[str, Any], request_id: str) -> tuple[Span, object]:
        """The request's span, made current for the request's task and the tasks it starts."""
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k in (b"traceparent", b"tracestate", b"baggage")}
        parent = extract(carrier)
        client = scope.get("client")
        attributes: dict[str, Any] = {
            "http.request.method": scope["method"],
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
            "rejoinder.request_id": request_id,
        }
        if client:
            attributes["client.address"] = client[0]
        span = self.tracer.start_span(scope["method"], context=parent, kind=SpanKind.SERVER, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        return span, token

    @staticmethod
    def end_server(span: Span, token: object, method: str, route: str | None, status: int,
                   principal: str | None, model: str | None) -> None:
        if route is not None:
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if principal is not None:
            span.set_attribute("rejoinder.principal", principal)
        if model is not None:
            span.set_attribute("gen_ai.request.model", model)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", str(status))
        span.end()
        otel_context.detach(token)  # type: ignore[arg-type]

    # -- a backend call -----------------------------------------------------------------------

    def start_backend(self, model: str, upstream_model: str, params: dict[str, Any]) -> Span:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",  # every backend speaks OpenAI's chat completions
            "gen_ai.request.model": upstream_model,
            "rejoinder.model": model,
        }
        for key, attribute in (("temperature", "gen_ai.request.temperature"), ("top_p", "gen_ai.request.top_p"),
                               ("max_output_tokens", "gen_ai.request.max_tokens")):
            value = params.get(key)
            if value is not None:
                attributes[attribute] = value
        return self.tracer.start_span(f"chat {upstream_model}", kind=SpanKind.CLIENT, attributes=attributes)

    @staticmethod
    def end_backend(span: Span, input_tokens: int, output_tokens: int, error: str | None) -> None:
        span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    # -- a tool call the server runs ----------------------------------------------------------

    def start_tool(self, kind: str, name: str, call_id: str | None) -> tuple[Span, object]:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.type": "extension",  # the semantic conventions' word for a tool run by the agent's side
            "rejoinder.tool.kind": kind,
        }
        if call_id:
            attributes["gen_ai.tool.call.id"] = call_id
        span = self.tracer.start_span(f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attributes)
        return span, otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def end_tool(span: Span, token: object, error: str | None) -> None:
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        otel_context.detach(token)  # type: ignore[arg-type]
