"""``rejoinder serve``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn

from rejoinder.backends.embedded import EmbeddedUnavailable, unavailable_reason
from rejoinder.backends.registry import NO_BACKEND_HELP, ModelRegistry
from rejoinder.config import load_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rejoinder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--config", type=Path, default=None, help="TOML, YAML or JSON settings file")
    serve.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None}
    settings = load_settings(args.config, **overrides)
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

    from rejoinder.http.app import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level,
                timeout_graceful_shutdown=15)


if __name__ == "__main__":
    main()
