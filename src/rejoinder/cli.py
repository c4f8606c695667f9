"""``rejoinder serve``, and the operator's commands beside it (``commands.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

from rejoinder.backends.embedded import EmbeddedUnavailable, unavailable_reason
from rejoinder.backends.registry import NO_BACKEND_HELP, ModelRegistry
from rejoinder.commands import add_commands, run_command
from rejoinder.config import load_settings
from rejoinder.observability.logs import configure_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rejoinder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--config", type=Path, default=None, help="TOML, YAML or JSON settings file")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--workers", type=int, default=1, help="processes serving the port (see docs/operations.md)")
    add_commands(sub)
    args = parser.parse_args(argv)
    if args.command != "serve":
        run_command(args)

    overrides = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None}
    settings = load_settings(args.config, **overrides)
    configure_logging(settings.log_format, args.log_level)
    try:
        routes = ModelRegistry.from_settings(settings).routes
    except EmbeddedUnavailable as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    if not routes:
        reason = unavailable_reason(settings.embedded) if settings.embedded.enabled == "auto" else None
        print(NO_BACKEND_HELP, file=sys.stderr)
        print(f"(The embedded model is not served: {reason or 'embedded.enabled is off'}.)", file=sys.stderr)
        sys.exit(2)

    # Logging is configured above (text or JSON); the access lines are Rejoinder's own (with request ids).
    logs = {"log_level": args.log_level, "log_config": None, "access_log": False}
    if args.workers > 1:
        serve_workers(args, settings.host, settings.port, logs)
        return
    from rejoinder.http.app import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, timeout_graceful_shutdown=15, **logs)


def serve_workers(args: argparse.Namespace, host: str, port: int, logs: dict[str, object]) -> None:
    """Several processes on one port (uvicorn's workers). Each builds its app from the same settings
    (``http.app.app_from_environment``); their metrics are summed through a shared directory
    (``PROMETHEUS_MULTIPROC_DIR``: a fresh one is made if it is not set)."""
    import os
    import shutil
    import tempfile

    made = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        made = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="rejoinder-metrics-")
    if args.config is not None:
        os.environ["REJOINDER_CONFIG_FILE"] = str(args.config.resolve())
    os.environ["REJOINDER_LOG_LEVEL"] = args.log_level
    try:
        uvicorn.run("rejoinder.http.app:app_from_environment", factory=True, host=host, port=port,
                    workers=args.workers, timeout_graceful_shutdown=15, **logs)  # type: ignore[arg-type]
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)


if __name__ == "__main__":
    main()
