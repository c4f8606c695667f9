"""Accepting a background request: stored as ``queued`` with its first events, then run here or
left for whichever replica has room.

The request is prepared once, here: every 4xx is found now, as for a foreground request, and what
the preparation found (its MCP tool listings) is stored with the job, so a replica that claims it
runs what was accepted without listing again.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from rejoinder.api.create_response import CreateResponse
from rejoinder.config import Settings
from rejoinder.engine.events import ResponseState, event_json
from rejoinder.errors import InvalidRequest
from rejoinder.request_context import RequestContext
from rejoinder.services.background.runner import Runner
from rejoinder.services.responses import ResponsesService
from rejoinder.store.responses import QueuedJob


class Submission:
    def __init__(self, settings: Settings, service: ResponsesService, runner: Runner):
        self.settings = settings
        self.service = service
        self.runner = runner

    async def submit(self, raw: dict[str, Any], req: CreateResponse, context: RequestContext) -> dict[str, Any]:
        """Store the response as queued (with its first events) and start it here if there is room."""
        if not req.store:
            raise InvalidRequest("Background mode requires store to be true.", param="background",
                                 code="invalid_value")
        local = self.runner.reserve()
        try:
            run = await self.service.start(req, context)
        except BaseException:
            if local:
                self.runner.unreserve()
            raise
        lease = self.service.lease_of(run)
        assert lease is not None  # a stored response always holds one
        plan = run.plan
        first = ResponseState(copy.deepcopy(plan.response))
        lock = None
        if plan.conversation_id and not local:  # held while it waits, with nobody to renew it
            lock = (plan.conversation_id, time.time() + self.settings.conversation_lock_seconds)
        job = QueuedJob(request=raw, events=[(0, event_json(first.created())), (1, event_json(first.queued()))],
                        prepared=_prepared(plan.toolset.kept()),
                        conversation_lock=lock)
        try:
            await self.service.responses.create(plan.response, context.tenant, plan.input_items, leased=local,
                                                queued=job)
        except BaseException:
            await plan.toolset.aclose()
            if plan.conversation_id:
                await self.service.conversations.unlock(plan.conversation_id, plan.response_id)
            lease.release()
            if local:
                self.runner.unreserve()
            raise
        accepted = copy.deepcopy(plan.response)
        if local:
            self.runner.run_accepted(run, lease)
        else:
            lease.release()  # the queue holds it now: whoever claims it takes a lease of its own
            await plan.toolset.aclose()
        return accepted


def _prepared(kept: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a queued job keeps of its preparation: the tools' (an MCP server's listing, say)."""
    return {"tools": kept} if kept else None
