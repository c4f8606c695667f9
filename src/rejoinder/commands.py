"""The operator's commands beside ``serve``: ``config``, ``check``, ``migrate``, ``sealing-key``.

- ``rejoinder config``: the effective settings (file, then ``REJOINDER_*`` variables), secrets masked,
  and how metrics and tracing are set up.
- ``rejoinder check``: asks each configured backend for its models (``GET {base_url}/models``) and
  reports whether the upstream model is there and its context window (configured or discovered, as
  ``backends/context_window.py`` finds it); exits 1 if any is not ready.
- ``rejoinder migrate``: brings the database to the latest schema and stops (``serve`` migrates
  at start-up too; this lets a deployment do it as a step of its own).
- ``rejoinder sealing-key``: prints a new key for ``sealing_keys`` (``crypto/keys.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy.engine import make_url

from rejoinder.backends.base import ModelRoute
from rejoinder.backends.context_window import context_window
from rejoinder.backends.registry import ModelRegistry
from rejoinder.config import BackendConfig, EmbeddedConfig, Settings, load_settings
from rejoinder.crypto.keys import KEY_FILE, new_key
from rejoinder.observability import tracing

CHECK_TIMEOUT = 10.0  # seconds for each backend's answer
MASK = "***"


def mask_secret(secret: str | None) -> str | None:
    """A secret as logs and screens may show it: its first 3 and last 4 characters when it is long
    enough to keep most of it hidden (as OpenAI shows keys), otherwise nothing of it."""
    if secret is None:
        return None
    return f"{secret[:3]}...{secret[-4:]}" if len(secret) >= 16 else MASK


def mask_url(url: str) -> str:
    """A database URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return MASK


def effective_config(settings: Settings) -> dict[str, Any]:
    data = settings.model_dump(mode="json")
    for model in data["models"].values():
        model["api_key"] = mask_secret(model.get("api_key"))
    data["api_keys"] = {mask_secret(key): principal for key, principal in settings.api_keys.items()}
    if len(data["api_keys"]) < len(settings.api_keys):  # two keys masked alike: number them instead
        data["api_keys"] = {f"{MASK} ({i + 1})": p for i, p in enumerate(settings.api_keys.values())}
    data["storage_url"] = mask_url(settings.database_url)
    data["sealing_keys"] = [MASK for _ in settings.sealing_keys] or f"generated in {settings.data_dir / KEY_FILE}"
    try:
        tracing_on = tracing.tracing_requested()
        protocol = tracing.protocol() if tracing_on else None
    except tracing.TracingConfigError as exc:
        tracing_on, protocol = True, f"invalid: {exc}"
    env = os.environ
    data["observability"] = {
        "tracing": {
            "endpoint": env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            "protocol": protocol,
            "service_name": env.get("OTEL_SERVICE_NAME") or "rejoinder",
        } if tracing_on else "off (set OTEL_EXPORTER_OTLP_ENDPOINT)",
        "metrics_multiprocess_dir": env.get("PROMETHEUS_MULTIPROC_DIR"),
    }
    return data


# -- check ------------------------------------------------------------------------------------

async def check_backend(name: str, cfg: BackendConfig, route: ModelRoute) -> dict[str, Any]:
    """Reachable, serving the configured model, and the context window (``context_window.py``:
    configured, or asked of the server the way vLLM, llama.cpp and Ollama each tell it)."""
    upstream = cfg.model or name
    report: dict[str, Any] = {"model": name, "base_url": cfg.base_url, "upstream_model": upstream}
    headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
    url = cfg.base_url.rstrip("/") + "/models"
    try:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT) as client:
            response = await client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return {**report, "ok": False, "error": f"cannot reach {url}: {type(exc).__name__}"}
    if response.status_code != 200:
        return {**report, "ok": False, "error": f"GET {url} answered HTTP {response.status_code}"}
    try:
        entries = [e for e in response.json()["data"] if isinstance(e, dict)]
    except (ValueError, KeyError, TypeError):
        return {**report, "ok": False, "error": f"GET {url} did not answer a model list"}
    served = sorted(str(e.get("id")) for e in entries)
    discovered = await context_window(route)
    report.update(served_models=served, context_window=discovered.window, context_window_source=discovered.source)
    if upstream not in served:
        return {**report, "ok": False, "error": f"the backend does not list '{upstream}'"}
    return {**report, "ok": True}


def check_embedded(settings: Settings) -> dict[str, Any] | None:
    from rejoinder.backends.embedded import find_model_file, unavailable_reason

    config = settings.embedded
    if config.enabled == "off" or (config.enabled == "auto" and settings.models):
        return None
    reason = unavailable_reason(config)
    return {"model": config.name, "base_url": "embedded (llama.cpp in-process)", "upstream_model": str(
        find_model_file(config) or config.model_path), "ok": reason is None, "context_window": config.n_ctx,
        **({"error": reason} if reason else {})}


async def check_all(settings: Settings) -> list[dict[str, Any]]:
    registry = ModelRegistry.from_settings(settings.model_copy(update={"embedded": EmbeddedConfig(enabled="off")}))
    try:
        reports = list(await asyncio.gather(*(check_backend(n, c, registry.routes[n])
                                              for n, c in settings.models.items())))
    finally:
        await registry.aclose()
    embedded = check_embedded(settings)
    return reports + ([embedded] if embedded else [])


def _print_check(reports: list[dict[str, Any]]) -> None:
    if not reports:
        print("No model backend is configured (and the embedded model is off).")
    for r in reports:
        state = "ok  " if r["ok"] else "FAIL"
        window = r.get("context_window")
        source = f" ({r['context_window_source']})" if window and r.get("context_window_source") else ""
        print(f"{state} {r['model']}: {r['upstream_model']} at {r['base_url']}; context window "
              f"{window if window else 'not reported'}{source}")
        if r.get("served_models") is not None:
            print(f"     the backend serves: {', '.join(r['served_models']) or '(nothing)'}")
        if not r["ok"]:
            print(f"     {r['error']}")


# -- migrate ----------------------------------------------------------------------------------

async def run_migrations(settings: Settings) -> tuple[int | None, int]:
    from rejoinder.store.db import Database
    from rejoinder.store.migrations import current_version, migrate

    db = Database(settings.database_url)
    try:
        before = await db.read(current_version)
        return before, await migrate(db)
    finally:
        await db.dispose()


# -- the commands -------------------------------------------------------------------------------

def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def config_command(args: argparse.Namespace) -> int:
    data = effective_config(_settings(args))
    print(json.dumps(data, indent=2) if args.format == "json" else yaml.safe_dump(data, sort_keys=False), end="")
    return 0


def check_command(args: argparse.Namespace) -> int:
    reports = asyncio.run(check_all(_settings(args)))
    if args.format == "json":
        print(json.dumps(reports, indent=2))
    else:
        _print_check(reports)
    return 0 if reports and all(r["ok"] for r in reports) else 1


def migrate_command(args: argparse.Namespace) -> int:
    settings = _settings(args)
    before, after = asyncio.run(run_migrations(settings))
    where = mask_url(settings.database_url)
    if before == after:
        print(f"{where}: schema version {after}, nothing to do")
    else:
        print(f"{where}: schema version {before if before is not None else '(empty)'} -> {after}")
    return 0


def sealing_key_command(args: argparse.Namespace) -> int:
    print(new_key())
    return 0


def add_commands(sub: Any) -> None:
    """Register the commands on ``rejoinder``'s subparsers; each sets ``run``."""
    for name, run, help_text, formats in (
        ("config", config_command, "print the effective configuration, secrets masked", ("yaml", "json")),
        ("check", check_command, "check each configured backend: its models and context windows", ("text", "json")),
        ("migrate", migrate_command, "run the database migrations and exit", None),
        ("sealing-key", sealing_key_command, "print a new random key for sealing_keys", None),
    ):
        parser = sub.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--config", type=Path, default=None, help="TOML, YAML or JSON settings file")
        if formats:
            parser.add_argument("--format", choices=formats, default=formats[0])
        parser.set_defaults(run=run)


def run_command(args: argparse.Namespace) -> None:
    sys.exit(args.run(args))
