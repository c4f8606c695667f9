"""Running background jobs on this replica: its slots, the queue it claims from, cancels.

A job runs here because this replica accepted it with a free slot (its run prepared at
submission), or because it claimed it from the queue (its run rebuilt from the stored request and
what the submission's preparation found, ``responses.prepared``: nothing is listed twice). Every
job holds a lease (``services/leases.py``) from the moment it is this replica's.

The queue and cancels are waited for, not polled: the claim loop wakes on a queued job or a freed
slot, the cancel watch on a cancel of one of this replica's jobs (``store/notify.py``). Both also
look every ``fallback_seconds``, in case a wake-up was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from rejoinder.api.create_response import validate_create
from rejoinder.config import Settings
from rejoinder.engine.compaction import attach
from rejoinder.engine.events import TERMINAL_EVENT_TYPES, ResponseState, event_json, terminal_event
from rejoinder.engine.loop import Persistence, ResponseRun
from rejoinder.engine.plan import RunPlan
from rejoinder.engine.prepare import prepare
from rejoinder.errors import APIError
from rejoinder.request_context import RequestContext
from rejoinder.services.background.event_log import EventLog
from rejoinder.services.leases import LeaseKeeper, RunLease
from rejoinder.services.persistence import conversation_append
from rejoinder.services.responses import ResponsesService
from rejoinder.store.errors import StoreError
from rejoinder.store.leases import LeaseStore
from rejoinder.store.notify import CANCEL, QUEUE, Wakeups
from rejoinder.store.responses import ConversationAppend, StoredResponse
from rejoinder.tenant import ACROSS_TENANTS

log = logging.getLogger(__name__)

FIRST_WORKER_SEQUENCE = 2  # 0 and 1 are response.created and response.queued, stored at creation


@dataclass
class Job:
    response_id: str
    lease: RunLease
    run: ResponseRun | None = None
    task: asyncio.Task[None] | None = None
    log: EventLog | None = None
    sequence: int = FIRST_WORKER_SEQUENCE  # of the next event
    started: bool = False  # queued -> in_progress happened here
    cancel: bool = False  # a client cancelled it
    superseded: bool = False  # a cancel won the race against the final write
    terminal_stored: bool = False  # stored with the final state (``BackgroundPersistence``)


class BackgroundPersistence(Persistence):
    """Commits a background run: its last events, its terminal event and its final state in one
    transaction, so a follower that finds it ended also finds how it ended."""

    def __init__(self, runner: Runner, job: Job):
        self.runner = runner
        self.job = job

    async def started(self, plan: RunPlan) -> None:
        pass  # the row exists since the request was accepted; the runner marked it in_progress

    async def finished(self, plan: RunPlan, response: dict[str, Any]) -> None:
        job = self.job
        pending = await job.log.stop() if job.log is not None else []
        terminal = terminal_event(response, job.sequence)  # the pending events are numbered below it
        events = pending + ([(terminal.sequence_number, event_json(terminal))] if terminal is not None else [])
        store = self.runner.store
        written = await store.finish(response, conversation=conversation_append(plan, response), only_if_active=True,
                                     events=events, drafts=job.lease.drafts)
        if not written and response["status"] != "cancelled":
            # Cancelled from another replica after our last look: the cancel wins, keep the output.
            job.superseded = True
            response.update(status="cancelled", completed_at=None)
            written = await store.finish(response, conversation=conversation_append(plan, response),
                                         only_if_active=True, events=pending, drafts=job.lease.drafts)
        if job.log is not None:
            job.log.pending.clear()
        job.terminal_stored = written and not job.superseded and terminal is not None
        job.lease.release()


class Runner:
    def __init__(self, settings: Settings, service: ResponsesService, leases: LeaseStore, keeper: LeaseKeeper,
                 wakeups: Wakeups):
        self.settings = settings
        self.service = service
        self.store = service.responses
        self.leases = leases
        self.keeper = keeper
        self.wakeups = wakeups
        self.slots = max(1, settings.background_workers)
        self.jobs: dict[str, Job] = {}
        self.accepting = True
        self._reserved = 0
        self._loops: list[asyncio.Task[None]] = []

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._loops = [asyncio.ensure_future(self._claim_loop()), asyncio.ensure_future(self._cancel_loop())]

    def stop_accepting(self) -> None:
        """Shutting down: take no new jobs (queued ones stay for the other replicas)."""
        self.accepting = False
        self.wakeups.wake(QUEUE, "")

    async def drain(self, grace: float = 10.0) -> None:
        """Let running jobs finish briefly, then cancel them (they store themselves as failed)."""
        tasks = {j.task for j in self.jobs.values() if j.task is not None}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)

    async def stop(self) -> None:
        self.stop_accepting()
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop

    # -- slots -------------------------------------------------------------------------------

    def reserve(self) -> bool:
        """Take a slot for a job being accepted here; False when there is none."""
        if not self.accepting or len(self.jobs) + self._reserved >= self.slots:
            return False
        self._reserved += 1
        return True

    def unreserve(self) -> None:
        self._reserved -= 1
        self.wakeups.wake(QUEUE, "")  # a slot is free

    def run_accepted(self, run: ResponseRun, lease: RunLease) -> None:
        """Run a job accepted here, in the slot ``reserve`` took, with the run prepared then."""
        self._reserved -= 1
        job = Job(run.plan.response_id, lease, run=run)
        run.persistence = BackgroundPersistence(self, job)
        self._spawn(job)

    def _spawn(self, job: Job) -> None:
        self.jobs[job.response_id] = job
        job.task = asyncio.ensure_future(self._run_job(job))
        job.lease.row = True
        job.lease.drive(job.run, job.task)
        job.task.add_done_callback(lambda task: self._job_done(job, task))

    def _job_done(self, job: Job, task: asyncio.Task[None]) -> None:
        self.jobs.pop(job.response_id, None)
        self.wakeups.wake(QUEUE, "")  # a slot is free
        # A failure before the response was stored is the lease's to log (it stores it as failed).
        if job.lease.settled and not task.cancelled() and task.exception() is not None:
            log.error("background response %s failed after it was stored", job.response_id,
                      exc_info=task.exception())

    # -- one job -----------------------------------------------------------------------------

    async def _run_job(self, job: Job) -> None:
        """Exceptions end the task: the job's lease logs them and stores the response as failed."""
        try:
            if job.run is None:
                job.run = await self._rebuild(job)
                if job.run is None:
                    return
            await self._execute(job)
        except asyncio.CancelledError:
            if not job.started:
                if job.run is not None:
                    job.run.plan.toolset.close_soon()
                if not job.cancel:  # shutting down: the job goes back to the queue
                    await asyncio.shield(self.leases.release(job.response_id))
                job.lease.release()
            if not job.cancel:
                raise

    async def _rebuild(self, job: Job) -> ResponseRun | None:
        """A job claimed from the queue: its run, from the stored request and preparation."""
        stored = await self.store.get(job.response_id, ACROSS_TENANTS)
        if stored is None or stored.body["status"] != "queued" or stored.request is None:
            job.lease.release()
            return None
        job.lease.conversation_id = (stored.body.get("conversation") or {}).get("id")
        try:
            req = validate_create(stored.request, self.service.tools)
            plan = await prepare(req, RequestContext.of(stored.tenant), self.service.registry, self.store,
                                 self.service.conversations, self.service.tools, self.settings,
                                 job.response_id, kept=(stored.prepared or {}).get("tools"),
                                 sealing=self.service.sealing)
        except (APIError, StoreError) as exc:
            await self._fail_unstarted(stored, str(exc))
            job.lease.release()
            return None
        stored.body["output"] = []
        plan.response = stored.body
        plan.input_items = await self.store.input_items(job.response_id)
        try:
            attach(plan, self.service.sealing)
        except APIError as exc:
            await plan.toolset.aclose()
            await self._fail_unstarted(stored, str(exc))
            job.lease.release()
            return None
        run = self.service.new_run(plan, BackgroundPersistence(self, job))
        assert job.task is not None
        job.lease.drive(run, job.task)
        return run

    async def _fail_unstarted(self, stored: StoredResponse, message: str) -> None:
        """A queued job that can no longer run (its previous response was deleted, say): failed,
        with its terminal event, in one transaction."""
        body = stored.body
        state = ResponseState({**body, "output": []})
        state.seq = FIRST_WORKER_SEQUENCE - 1
        terminal = state.failed("server_error", message)
        conv = (body.get("conversation") or {}).get("id")
        append = ConversationAppend(conv, [], lock_holder=body["id"]) if conv else None
        await self.store.finish(state.response, conversation=append, only_if_active=True,
                                events=[(terminal.sequence_number, event_json(terminal))])

    async def _execute(self, job: Job) -> None:
        run = job.run
        assert run is not None
        started = {**run.plan.response, "status": "in_progress"}
        if job.cancel or not await self.leases.mark_started(started):
            await run.plan.toolset.aclose()
            job.lease.release()
            return  # cancelled while queued
        job.started = True
        job.log = EventLog(self.store, job.response_id)
        async for batch in run.events():
            for event in batch:
                if event.type == "response.created":
                    continue  # stored with the response when it was accepted
                if event.type in TERMINAL_EVENT_TYPES and (job.terminal_stored or job.superseded):
                    continue  # stored with the final state
                job.log.add(job.sequence, event_json(event.renumbered(job.sequence)))
                job.sequence += 1

    # -- cancels -----------------------------------------------------------------------------

    def cancel_local(self, response_id: str) -> None:
        job = self.jobs.get(response_id)
        if job is None or job.cancel:
            return
        job.cancel = True
        if job.run is not None:
            job.run.cancel_requested = True
        if job.task is not None:
            job.task.cancel()

    async def _cancel_loop(self) -> None:
        """Stops the jobs a client cancelled, from whichever replica: woken by the cancel's
        notification, confirmed in the database."""
        with self.wakeups.watch(CANCEL) as cancels:
            while True:
                woken = await cancels.wait(self.wakeups.fallback_seconds)
                keys, everything = cancels.keys, cancels.everything or not woken
                cancels.clear()
                ids = list(self.jobs) if everything else [k for k in keys if k in self.jobs]
                try:
                    for response_id in await self.leases.cancel_requested(ids):
                        self.cancel_local(response_id)
                except Exception:
                    log.exception("looking for cancelled background responses failed; retrying")

    # -- the queue ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        with self.wakeups.watch(QUEUE) as queued:
            while self.accepting:
                queued.clear()
                try:
                    free = self.slots - len(self.jobs) - self._reserved
                    if free > 0 and await self.leases.has_queued():
                        for response_id in await self.leases.claim(free):
                            self._spawn(Job(response_id, self.keeper.open(response_id, None)))
                except Exception:
                    log.exception("claiming background responses failed; retrying")
                await queued.wait(self.wakeups.fallback_seconds)
