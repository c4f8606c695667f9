"""Metrics, traces, logs and request ids, kept out of the engine.

- ``middleware.py``: the ASGI middleware every HTTP request passes (request id, access line, HTTP
  metrics, server span).
- ``hooks.py``: ``Telemetry`` and the few calls a response's run makes (first token, backend calls,
  tool calls, its end).
- ``metrics.py``: the Prometheus families; ``tracing.py`` / ``spans.py``: OpenTelemetry, imported
  only when configured; ``logs.py``: text or JSON log lines.
"""
