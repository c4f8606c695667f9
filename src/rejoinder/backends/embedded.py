"""The embedded model: SmolLM2-135M-Instruct through llama-cpp-python (see issue: embedded model).

Placeholder until the embedded backend lands: reports that no embedded model is available.
"""

from __future__ import annotations

from rejoinder.backends.base import ModelRoute
from rejoinder.config import Settings


def route_from_settings(settings: Settings, have_other_models: bool) -> ModelRoute | None:
    return None
