"""How a run's state reaches the store: at start (so GET finds it) and at the end (atomically)."""

from __future__ import annotations

from typing import Any

from rejoinder.engine.loop import Persistence
from rejoinder.engine.plan import RunPlan
from rejoinder.store.conversations import ConversationStore
from rejoinder.store.responses import ConversationAppend, ResponseStore

# Responses whose items join their conversation; failed and cancelled ones leave it untouched.
APPENDING_STATUSES = ("completed", "incomplete")


class StorePersistence(Persistence):
    def __init__(self, responses: ResponseStore, conversations: ConversationStore, already_created: bool = False):
        self.responses = responses
        self.conversations = conversations
        self.already_created = already_created

    async def started(self, plan: RunPlan) -> None:
        if plan.store and not self.already_created:
            await self.responses.create(plan.response, plan.owner, plan.input_items)

    async def finished(self, plan: RunPlan, response: dict[str, Any]) -> None:
        conv = plan.conversation_id
        if not plan.store:
            if conv:
                await self.conversations.unlock(conv, plan.response_id)
            return
        append = None
        if conv:
            items = [*plan.input_items, *response["output"]] if response["status"] in APPENDING_STATUSES else []
            append = ConversationAppend(conv, items, lock_holder=plan.response_id)
        await self.responses.finish(response, conversation=append, only_if_active=True)
