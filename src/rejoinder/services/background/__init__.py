"""Background responses (``background: true``), across replicas.

One job per module:

- ``submission``: accepting a request. It is stored as ``queued`` with its first two events
  (``response.created``, ``response.queued``) and answered at once; the replica that took it runs
  it if it has a free slot, else any replica with room claims it.
- ``runner``: running jobs in this replica's slots, claiming queued ones, stopping cancelled ones.
- ``event_log``: a run's events into the database, for followers on any replica.
- ``follow``: replaying and following a stream (``GET /v1/responses/{id}?stream=true``).

Keeping a running job's lease is ``services/leases.py``'s job, as for every run. Nothing here polls:
queued jobs, cancels and new events wake whoever waits for them (``store/notify.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from rejoinder.api.create_response import CreateResponse
from rejoinder.config import Settings
from rejoinder.engine.events import Event
from rejoinder.request_context import RequestContext
from rejoinder.services.background.follow import Followers
from rejoinder.services.background.runner import Runner
from rejoinder.services.background.submission import Submission
from rejoinder.services.leases import LeaseKeeper
from rejoinder.services.responses import ResponsesService
from rejoinder.store.leases import LeaseStore
from rejoinder.tenant import Tenant


class BackgroundResponses:
    """What the HTTP layer and the app's life cycle call."""

    def __init__(self, settings: Settings, service: ResponsesService, leases: LeaseStore, keeper: LeaseKeeper):
        wakeups = service.responses.db.wakeups
        self.leases = leases
        self.store = service.responses
        self.runner = Runner(settings, service, leases, keeper, wakeups)
        self.submission = Submission(settings, service, self.runner)
        self.followers = Followers(service.responses, wakeups)

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.runner.start()

    def stop_accepting(self) -> None:
        self.runner.stop_accepting()

    async def drain(self, grace: float = 10.0) -> None:
        await self.runner.drain(grace)

    async def stop(self) -> None:
        await self.runner.stop()

    # -- requests ----------------------------------------------------------------------------

    async def submit(self, raw: dict[str, Any], req: CreateResponse, context: RequestContext) -> dict[str, Any]:
        return await self.submission.submit(raw, req, context)

    async def cancel(self, response_id: str, tenant: Tenant) -> dict[str, Any]:
        """Cancel from any replica: stored at once (``Missing`` and ``NotCancellable`` are store
        errors); the replica running it stops it on the notification, this one right away."""
        body = await self.leases.request_cancel(response_id, tenant)
        self.runner.cancel_local(response_id)
        stored = await self.store.get(response_id, tenant)
        return stored.body if stored is not None else body

    async def check_streamable(self, response_id: str, tenant: Tenant) -> None:
        await self.followers.check_streamable(response_id, tenant)

    def follow(self, response_id: str, after: int) -> AsyncIterator[list[Event]]:
        return self.followers.follow(response_id, after)
