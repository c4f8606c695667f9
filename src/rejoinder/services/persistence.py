"""How a run's state reaches the store: at start (so GET finds it) and at the end (atomically).

Conversation rules (see docs/conversations.md): a ``completed`` or ``incomplete`` response appends
its input items and then every output item, in order, in the transaction that stores the
response; ``failed`` and ``cancelled`` ones append nothing, so a retry starts from the same state;
``store=false`` writes nothing at all. Whatever happens, the conversation lock is released.
"""

from __future__ import annotations

from typing import Any

from rejoinder.engine.loop import Persistence
from rejoinder.engine.plan import RunPlan
from rejoinder.store.conversations import ConversationStore
from rejoinder.store.responses import ConversationAppend, ResponseStore

# Responses whose items join their conversation; failed and cancelled ones leave it untouched.
APPENDING_STATUSES = ("completed", "incomplete")


def conversation_append(plan: RunPlan, response: dict[str, Any]) -> ConversationAppend | None:
    """What a finished turn adds to its conversation: its input, then its output, in order."""
    if not plan.conversation_id:
        return None
    items = [*plan.input_items, *response["output"]] if response["status"] in APPENDING_STATUSES else []
    return ConversationAppend(plan.conversation_id, items, lock_holder=plan.response_id)


class StorePersistence(Persistence):
    """``already_created``: a background response, whose row exists since it was queued.
    ``write_once``: a foreground response that is not streamed. Its id reaches the client only
    with the finished response, so nobody can look it up earlier: it is written once, when it
    ends, instead of at start and at end (one transaction less per turn). A streamed response is
    stored at start because ``response.created`` hands out its id."""

    def __init__(self, responses: ResponseStore, conversations: ConversationStore, already_created: bool = False,
                 write_once: bool = False):
        self.responses = responses
        self.conversations = conversations
        self.already_created = already_created
        self.write_once = write_once and not already_created

    def writes_at_start(self, plan: RunPlan) -> bool:
        return plan.store and not self.already_created and not self.write_once

    async def started(self, plan: RunPlan) -> None:
        if self.writes_at_start(plan):
            await self.responses.create(plan.response, plan.owner, plan.input_items)

    async def finished(self, plan: RunPlan, response: dict[str, Any]) -> None:
        conv = plan.conversation_id
        if not plan.store:
            if conv:
                await self.conversations.unlock(conv, plan.response_id)
            return
        try:
            if self.write_once:
                await self.responses.create_finished(response, plan.owner, plan.input_items,
                                                     conversation=conversation_append(plan, response))
                return
            written = await self.responses.finish(
                response, conversation=conversation_append(plan, response), only_if_active=True
            )
        except Exception:
            if conv:  # the append was rolled back: do not keep the conversation locked until expiry
                await self.conversations.unlock(conv, plan.response_id)
            raise
        if conv and not written:
            # A cancel was stored first: the turn adds nothing, but its lock must still go.
            await self.conversations.unlock(conv, plan.response_id)
