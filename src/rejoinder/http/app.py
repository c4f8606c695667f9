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
from rejoinder.http import errors, routes_conversations, routes_models, routes_responses
from rejoinder.http.create_endpoint import CreateResponseEndpoint, RejoinderApp
from rejoinder.http.testid import TestIdMiddleware
from rejoinder.services.background import BackgroundWorker, lease_owner_token
from rejoinder.services.responses import ResponsesService
from rejoinder.store.conversations import ConversationStore
from rejoinder.store.db import Database
from rejoinder.store.leases import LeaseStore
from rejoinder.store.migrations import migrate
from rejoinder.store.responses import ResponseStore

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    registry: ModelRegistry
    responses: ResponsesService
    conversations: ConversationStore
    background: BackgroundWorker | None = None


async def build_services(settings: Settings) -> Services:
    db = Database(settings.database_url)
    await migrate(db)
    registry = ModelRegistry.from_settings(settings)
    conversations = ConversationStore(db)
    lease_owner = lease_owner_token(settings)
    store = ResponseStore(db, lease_owner=lease_owner, lease_seconds=settings.lease_seconds)
    responses = ResponsesService(settings, registry, store, conversations)
    background = BackgroundWorker(settings, responses, LeaseStore(db, lease_owner, settings.lease_seconds,
                                                                settings.conversation_lock_seconds))
    return Services(settings, db, registry, responses, conversations, background)


def create_app(settings: Settings) -> RejoinderApp:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await build_services(settings)
        app.state.services = services
        assert services.background is not None
        await services.background.start()
        try:
            yield
        finally:
            services.background.stop_accepting()
            await asyncio.gather(services.responses.shutdown(), services.background.drain())
            await services.background.stop()
            await services.registry.aclose()
            await services.db.dispose()

    app = RejoinderApp(title="Rejoinder", version=__version__, lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    errors.install(app)
    create = CreateResponseEndpoint(app)
    app.router.add_route("/v1/responses", create, methods=["POST"])
    app.include_router(routes_models.router)
    app.include_router(routes_responses.router)
    app.include_router(routes_conversations.router)
    app.create_endpoint = create
    if settings.recording.mode != "live":
        app.add_middleware(TestIdMiddleware)
        app.create_endpoint = TestIdMiddleware(create)
    return app
