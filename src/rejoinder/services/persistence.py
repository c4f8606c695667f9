"""How a run's state reaches the store: at start (so GET finds it) and at the end (atomically).

Conversation rules (see docs/conversations.md): a ``completed`` or ``incomplete`` response appends
its input items and then every output item, in order, in the transaction that stores the
response; ``failed`` and ``cancelled`` ones append nothing, so a retry starts from the same state;
``store=false`` writes nothing at all. Whatever happens, the conversation lock is released.

Once the final state is stored (or, for store=false, the lock released) the run's lease is
released: the run settled itself (``services/leases.py``).
"""

from __future__ import annotations

from typing import Any

from rejoinder.engine.loop import Persistence
from rejoinder.engine.plan import RunPlan
from rejoinder.services.leases import RunLease
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
    """Every stored response is written when it starts, its input items with it, and finished at
    the end (background runs have their own, ``services/background/runner.py``).

    A response that is not streamed is stored at start too, although nobody can look it up before
    it ends: that write overlaps the model's work (the run sends the model's request first), and
    the end is then a smaller transaction on the answer's path (an update and the output items).
    Writing it once at the end, in one transaction, cost a turn 0.03 ms more (``bench/compare.py``,
    four servers a side), though one transaction less of CPU."""

    def __init__(self, responses: ResponseStore, conversations: ConversationStore, lease: RunLease | None):
        self.responses = responses
        self.conversations = conversations
        self.lease = lease  # None: a store=false turn outside a conversation holds nothing

    async def started(self, plan: RunPlan) -> None:
        if plan.store:
            await self.responses.create(plan.response, plan.tenant, plan.input_items, request=plan.kept_request)
            if self.lease is not None:
                self.lease.row = True

    async def discarded(self, plan: RunPlan) -> None:
        """Refused by the backend before it began, a non-streamed response is not kept (OpenAI keeps
        none: the client got an HTTP error, no id)."""
        if plan.store:
            await self.responses.delete(plan.response_id, plan.tenant)
        if plan.conversation_id:
            await self.conversations.unlock(plan.conversation_id, plan.response_id)
        self._release()

    async def finished(self, plan: RunPlan, response: dict[str, Any]) -> None:
        conv = plan.conversation_id
        if not plan.store:
            if conv:
                await self.conversations.unlock(conv, plan.response_id)
            self._release()
            return
        try:
            written = await self.responses.finish(
                response, conversation=conversation_append(plan, response), only_if_active=True,
                drafts=self.lease is not None and self.lease.drafts,
            )
        except Exception:
            if conv:  # the append was rolled back: do not keep the conversation locked until expiry
                await self.conversations.unlock(conv, plan.response_id)
            raise
        if conv and not written:
            # A cancel was stored first: the turn adds nothing, but its lock must still go.
            await self.conversations.unlock(conv, plan.response_id)
        self._release()

    def _release(self) -> None:
        if self.lease is not None:
            self.lease.release()
