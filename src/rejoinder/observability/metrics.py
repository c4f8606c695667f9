"""The Prometheus metric families Rejoinder exports at ``GET /metrics``.

Every label holds a bounded value: a configured model name, a response status, an HTTP method,
a route template (``/v1/responses/{response_id}``, never a path with an id), a status code, a tool
kind. Nothing a client can vary freely becomes a label.

Several worker processes (``rejoinder serve --workers N``, or replicas on one host sharing a
directory): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the processes start, as
prometheus-client documents. Each process then writes its values to files there and ``/metrics``,
whichever process answers it, reports the sum over all of them (gauges: the sum over live
processes; the queue depth: the latest reading).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client import multiprocess as mp
from prometheus_client.exposition import choose_encoder

# Counters and histograms would each carry a ``_created`` series; no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Seconds. Model calls and streams last from milliseconds to minutes: the default buckets stop at 10 s.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

TOOL_KINDS = ("function", "mcp")  # tool kinds counted from the start, so their series exist at 0

# What Grafana needs to know of each family: (name as exported, type, labels, meaning). The README's
# list is checked against this and against a live /metrics by the tests.
FAMILIES = (
    ("rejoinder_responses_total", "counter", "model, status", "responses that ended, by final status"),
    ("rejoinder_http_request_duration_seconds", "histogram", "method, route, status",
     "HTTP requests, a stream's whole body included"),
    ("rejoinder_time_to_first_token_seconds", "histogram", "model",
     "from a response's start to the model's first output"),
    ("rejoinder_backend_request_duration_seconds", "histogram", "model", "each call to a model backend"),
    ("rejoinder_tokens_total", "counter", "model, type", "tokens the backends reported (type: input, output)"),
    ("rejoinder_tool_calls_total", "counter", "kind", "tool calls: mcp when the server runs them, function "
     "when the model hands them to the client"),
    ("rejoinder_active_streams", "gauge", "", "event streams being sent"),
    ("rejoinder_background_queue_depth", "gauge", "", "background responses queued in the database, "
     "waiting for a worker (read at scrape time)"),
    ("rejoinder_lease_takeovers_total", "counter", "", "responses this replica settled after another "
     "replica's lease lapsed"),
)


class ModelMetrics:
    """The children of one model's labelled families, resolved once (``labels()`` costs a lock and
    a validation per call; a turn reports to these several times)."""

    __slots__ = ("backend_duration", "input_tokens", "output_tokens", "ttft")

    def __init__(self, metrics: Metrics, model: str):
        self.ttft = metrics.ttft.labels(model)
        self.backend_duration = metrics.backend_duration.labels(model)
        self.input_tokens = metrics.tokens.labels(model, "input")
        self.output_tokens = metrics.tokens.labels(model, "output")


class Metrics:
    """One set of families in a registry of its own (a process may hold several servers: tests do)."""

    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        if self.multiprocess_dir is not None and not os.path.isdir(self.multiprocess_dir):
            raise RuntimeError(f"PROMETHEUS_MULTIPROC_DIR={self.multiprocess_dir} is not a directory: create it "
                               "(empty) before the server starts, or unset it for a single process.")
        r = self.registry = CollectorRegistry()
        self.responses = Counter("rejoinder_responses", "Responses that ended, by final status.",
                                 ["model", "status"], registry=r)
        self.http_duration = Histogram(
            "rejoinder_http_request_duration_seconds",
            "HTTP request duration, a streamed body included; route is the route's template.",
            ["method", "route", "status"], buckets=DURATION_BUCKETS, registry=r)
        self.ttft = Histogram("rejoinder_time_to_first_token_seconds",
                              "From a response's start to the model's first output.",
                              ["model"], buckets=TTFT_BUCKETS, registry=r)
        self.backend_duration = Histogram("rejoinder_backend_request_duration_seconds",
                                          "Duration of each call to a model backend.",
                                          ["model"], buckets=DURATION_BUCKETS, registry=r)
        self.tokens = Counter("rejoinder_tokens", "Tokens reported by the model backends.",
                              ["model", "type"], registry=r)
        self.tool_calls = Counter("rejoinder_tool_calls", "Tool calls, by tool kind.", ["kind"], registry=r)
        self.active_streams = Gauge("rejoinder_active_streams", "Event streams being sent.",
                                    registry=r, multiprocess_mode="livesum")
        self.queue_depth = Gauge("rejoinder_background_queue_depth",
                                 "Background responses queued in the database, waiting for a worker.",
                                 registry=r, multiprocess_mode="mostrecent")
        self.lease_takeovers = Counter("rejoinder_lease_takeovers",
                                       "Responses settled after another replica's lease lapsed.", registry=r)
        for kind in TOOL_KINDS:
            self.tool_calls.labels(kind)
        # Label values are bounded (see the module's docstring), and so are these caches.
        self._models: dict[str, ModelMetrics] = {}
        self._http: dict[tuple[str, str, int], Any] = {}
        self._responses: dict[tuple[str, str], Any] = {}

    def model(self, model: str) -> ModelMetrics:
        found = self._models.get(model)
        if found is None:
            found = self._models[model] = ModelMetrics(self, model)
        return found

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        child = self._http.get((method, route, status))
        if child is None:
            child = self._http[(method, route, status)] = self.http_duration.labels(method, route, str(status))
        child.observe(seconds)

    def response_ended(self, model: str, status: str) -> None:
        child = self._responses.get((model, status))
        if child is None:
            child = self._responses[(model, status)] = self.responses.labels(model, status)
        child.inc()

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The metrics in the format the scraper's ``Accept`` asks for (Prometheus' text format, or
        OpenMetrics), and its content type; summed over processes in multi-process mode."""
        encode, content_type = choose_encoder(accept)
        if self.multiprocess_dir is None:
            return encode(self.registry), content_type
        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return encode(registry), content_type

    def process_exit(self) -> None:
        """A process leaving multi-process mode: its live gauges stop counting."""
        if self.multiprocess_dir is not None:
            mp.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]
