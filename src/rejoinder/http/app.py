"""The ASGI application and what it holds for its lifetime."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from rejoinder import __version__
from rejoinder.backends.registry import ModelRegistry
from rejoinder.config import Settings
from rejoinder.crypto.keys import load_key_ring
from rejoinder.crypto.sealing import KeyRing
from rejoinder.files.store import FileStore
from rejoinder.http import (
    errors,
    routes_context,
    routes_conversations,
    routes_files,
    routes_metrics,
    routes_models,
    routes_responses,
    routes_ui,
    routes_vector_store_files,
    routes_vector_stores,
)
from rejoinder.http.gate import RequestGate
from rejoinder.http.routes_create import create_response
from rejoinder.http.ws_route import responses_socket
from rejoinder.observability.hooks import Telemetry
from rejoinder.observability.middleware import RequestTelemetry
from rejoinder.services.background import BackgroundResponses
from rejoinder.services.leases import LeaseKeeper, lease_owner_token
from rejoinder.services.responses import ResponsesService
from rejoinder.store.conversations import ConversationStore
from rejoinder.store.db import Database
from rejoinder.store.leases import LeaseStore
from rejoinder.store.migrations import migrate
from rejoinder.store.notify import PostgresListener
from rejoinder.store.responses import ResponseStore
from rejoinder.tools import web_search
from rejoinder.tools.registry import BUILTIN, ToolKinds
from rejoinder.tools.web_provider import WebSearchProvider
from rejoinder.vectors import setup as vector_setup
from rejoinder.vectors.service import VectorService

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    registry: ModelRegistry
    responses: ResponsesService
    conversations: ConversationStore
    leases: LeaseKeeper
    background: BackgroundResponses
    telemetry: Telemetry
    sealing: KeyRing  # opens and seals blobs handed to clients (crypto/sealing.py)
    listener: PostgresListener | None = None
    files: FileStore | None = None
    vectors: VectorService | None = None
    web_search: WebSearchProvider | None = None  # the web_search tool's provider (tools/web_search.py)

    async def start(self) -> None:
        """Hear of other replicas' changes, settle what dead ones left, take queued jobs."""
        if self.listener is not None:
            await self.listener.start()
        await self.leases.start()
        self.background.start()
        if self.vectors is not None:
            await self.vectors.worker.start()

    async def stop(self) -> None:
        self.background.stop_accepting()
        await asyncio.gather(self.responses.shutdown(), self.background.drain())
        await self.background.stop()
        if self.vectors is not None:
            await self.vectors.worker.stop()
            await self.vectors.embedders.aclose()
        await self.leases.stop()
        if self.listener is not None:
            await self.listener.stop()
        await self.registry.aclose()
        if self.web_search is not None:
            await self.web_search.aclose()
        await self.db.dispose()


async def build_services(settings: Settings, telemetry: Telemetry, tools: ToolKinds = BUILTIN) -> Services:
    db = Database(settings.database_url)
    sealing = load_key_ring(settings.sealing_keys, settings.data_dir, shared_storage=db.is_postgres)
    await migrate(db)
    registry = ModelRegistry.from_settings(settings)
    conversations = ConversationStore(db)
    lease_owner = lease_owner_token(settings)
    store = ResponseStore(db, lease_owner=lease_owner, lease_seconds=settings.lease_seconds)
    leases = LeaseStore(db, lease_owner, settings.lease_seconds, settings.conversation_lock_seconds)
    keeper = LeaseKeeper(leases, conversations, settings.replica_id, on_takeover=telemetry.lease_takeovers)
    files, vectors = await vector_setup.build(settings, db, lease_owner)
    web_provider = web_search.make_provider(settings.web_search)
    if web_provider is not None:
        tools = tools.with_kinds(*web_search.kinds(web_provider, settings.web_search))
    tools = tools.bound(vectors=vectors, files=files)
    responses = ResponsesService(settings, registry, store, conversations, keeper, telemetry, tools)
    responses.sealing = sealing
    background = BackgroundResponses(settings, responses, leases, keeper)
    listener = PostgresListener(db.url, db.wakeups) if db.is_postgres else None
    return Services(settings, db, registry, responses, conversations, keeper, background, telemetry, sealing,
                    listener, files, vectors, web_provider)


def create_app(settings: Settings, tools: ToolKinds = BUILTIN) -> FastAPI:
    """One pipeline for every route: FastAPI's, with the gate (limits, principal) and OpenAI's error shape.
    ``tools``: the tool kinds served (tools/registry.py)."""
    telemetry = Telemetry.from_environment()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await build_services(settings, telemetry, tools)
        app.state.services = services
        await services.start()
        try:
            yield
        finally:
            await services.stop()
            telemetry.shutdown()

    app = FastAPI(title="Rejoinder", version=__version__, lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    app.state.telemetry = telemetry
    app.add_middleware(RequestGate, settings=settings)
    errors.install(app)  # its middleware wraps the gate: an unexpected error there is a 500 too
    # A plain Starlette route (no dependency injection): the one route on a turn's latency path.
    app.router.add_route("/v1/responses", create_response, methods=["POST"])
    app.router.add_websocket_route("/v1/responses", responses_socket)  # WebSocket mode (http/ws_route.py)
    app.include_router(routes_models.router)
    app.include_router(routes_context.router)  # before /v1/responses/{id}: input_tokens, compact
    app.include_router(routes_responses.router)
    app.include_router(routes_conversations.router)
    app.include_router(routes_metrics.router)
    app.include_router(routes_files.router)
    app.include_router(routes_vector_stores.router)
    app.include_router(routes_vector_store_files.router)
    routes_ui.mount(app)
    # Added last, so the outermost: every answer gets its request id, the gate's 401s and 413s too.
    app.add_middleware(RequestTelemetry, telemetry=telemetry, routes=app.router.routes)
    return app


def app_from_environment() -> FastAPI:
    """The app of one worker of ``rejoinder serve --workers N`` (an import string for uvicorn):
    settings from ``REJOINDER_CONFIG_FILE`` and the environment, logging as ``serve`` set it up."""
    import os
    from pathlib import Path

    from rejoinder.config import load_settings
    from rejoinder.observability.logs import configure_logging

    path = os.environ.get("REJOINDER_CONFIG_FILE")
    settings = load_settings(Path(path) if path else None)
    configure_logging(settings.log_format, os.environ.get("REJOINDER_LOG_LEVEL", "info"))
    return create_app(settings)
