"""OpenTelemetry tracing, configured by its standard environment variables and by nothing else.

Tracing is on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is
set, unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. ``OTEL_EXPORTER_OTLP_PROTOCOL``
picks ``http/protobuf`` (the default) or ``grpc`` (needs ``pip install 'rejoinder[otlp-grpc]'``);
``OTEL_SERVICE_NAME`` names the service (default ``rejoinder``). The SDK reads the rest itself
(headers, timeouts, ``OTEL_TRACES_SAMPLER``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``,
``OTEL_PROPAGATORS``).

When it is off, the SDK is never imported and every hook skips its span with one ``is None`` test.
The provider is installed as the global one, so the MCP SDK's own spans (and the trace context it
passes to MCP servers) land in the same trace, under the tool call that made them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from rejoinder import __version__

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)

PROTOCOLS = ("http/protobuf", "grpc")


class TracingConfigError(RuntimeError):
    """The OTEL_* variables ask for something this installation cannot do."""


def tracing_requested(environ: Mapping[str, str] = os.environ) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def protocol(environ: Mapping[str, str] = os.environ) -> str:
    value = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
             or "http/protobuf").strip()
    if value not in PROTOCOLS:
        raise TracingConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={value!r} is not supported: use one of "
                                 f"{', '.join(PROTOCOLS)}.")
    return value


def tracer_from_environment(environ: Mapping[str, str] = os.environ) -> Tracer | None:
    """The tracer spans are made with, or None when tracing is not configured."""
    if not tracing_requested(environ):
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):  # another server of this process configured it already
        return current.get_tracer("rejoinder", __version__)
    kind = protocol(environ)
    if kind == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise TracingConfigError("OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the gRPC exporter: "
                                     "pip install 'rejoinder[otlp-grpc]'.") from exc
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
    resource = Resource.create({"service.version": __version__})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "rejoinder"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("tracing: exporting spans over OTLP (%s) as service %r", kind, resource.attributes[SERVICE_NAME])
    return provider.get_tracer("rejoinder", __version__)


def flush(timeout_seconds: float = 5.0) -> None:
    """Send the spans still buffered (at shutdown); a no-op when tracing is off."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush(int(timeout_seconds * 1000))
