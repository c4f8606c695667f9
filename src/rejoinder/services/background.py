"""Background responses, cancellation, stream resume and crash recovery, across replicas.

``background: true`` stores the response as ``queued`` together with its first two events
(``response.created``, ``response.queued``) and returns at once. The replica that took the
request runs it itself when it has a free slot (the row is created under its lease); otherwise
the row is left unowned and whichever replica has room claims it from the database. The worker
persists every event with its sequence number, so any replica can replay and follow the stream
(``GET /v1/responses/{id}?stream=true&starting_after=N``) and a cancel that lands on any replica
reaches the worker through the ``cancel_requested`` flag, which it polls.

The worker also renews this replica's leases (foreground responses carry one too) and settles the
responses of replicas that died: see ``store/leases.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from rejoinder.api.create_response import CreateResponse, validate_create
from rejoinder.config import Settings
from rejoinder.engine.events import (
    TERMINAL_EVENT_TYPES,
    TERMINAL_STATUSES,
    ResponseState,
    event_json,
    sse_frame,
    terminal_event,
)
from rejoinder.engine.loop import Persistence, ResponseRun
from rejoinder.engine.plan import RunPlan
from rejoinder.engine.prepare import prepare
from rejoinder.errors import APIError, InvalidRequest, not_found
from rejoinder.request_context import RequestContext
from rejoinder.services.persistence import conversation_append
from rejoinder.services.responses import ResponsesService
from rejoinder.store.leases import LeaseStore
from rejoinder.store.responses import ConversationAppend, ResponseStore
from rejoinder.store.schema import ACTIVE_STATUSES

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2  # how often a replica looks for queued jobs and for cancels of its jobs
FOLLOW_POLL_SECONDS = 0.1  # how often a follower of another replica's run looks for new events
FIRST_WORKER_SEQUENCE = 2  # 0 and 1 are response.created and response.queued, stored at creation



def lease_owner_token(settings: Settings) -> str:
    """``<replica id>/<incarnation>``: a restarted replica with a fixed id knows its old rows."""
    replica = settings.replica_id or f"{socket.gethostname()}-{os.getpid()}"
    return f"{replica}/{secrets.token_hex(4)}"


class _EventLog:
    """Writes a run's events to the database in batches: one write per flush, and a new flush
    starts as soon as the previous one ends, so a fast stream costs few transactions."""

    def __init__(self, store: ResponseStore, response_id: str, notify: Any):
        self.store = store
        self.response_id = response_id
        self.notify = notify
        self.pending: list[tuple[int, str]] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, sequence_number: int, data: str) -> None:
        self.pending.append((sequence_number, data))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            await self.store.add_events(self.response_id, batch)
            self.notify(self.response_id)

    async def drain(self) -> None:
        if self._task is not None:
            await self._task
        if self.pending:
            await self._flush()


@dataclass
class _Job:
    response_id: str
    run: ResponseRun | None = None
    task: asyncio.Task[None] | None = None
    log: _EventLog | None = None
    cancel: bool = False  # a client cancelled it
    superseded: bool = False  # a cancel won the race against the final write
    started_at: float = field(default_factory=time.monotonic)


class BackgroundPersistence(Persistence):
    """Commits a background run: its events first, then the final state, as for foreground runs."""

    def __init__(self, worker: BackgroundWorker, job: _Job):
        self.worker = worker
        self.job = job

    async def started(self, plan: RunPlan) -> None:
        pass  # the row exists since the request was accepted; _execute marked it in_progress

    async def finished(self, plan: RunPlan, response: dict[str, Any]) -> None:
        if self.job.log is not None:
            await self.job.log.drain()
        store = self.worker.store
        if await store.finish(response, conversation=conversation_append(plan, response), only_if_active=True):
            return
        if response["status"] != "cancelled":
            # Cancelled from another replica after our last poll: the cancel wins, keep the output.
            self.job.superseded = True
            response.update(status="cancelled", completed_at=None)
            await store.finish(response, conversation=conversation_append(plan, response), only_if_active=True)


class BackgroundWorker:
    def __init__(self, settings: Settings, service: ResponsesService, leases: LeaseStore):
        self.settings = settings
        self.service = service
        self.store = service.responses
        self.leases = leases
        self.slots = max(1, settings.background_workers)
        self.jobs: dict[str, _Job] = {}
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._accepting = True

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Settle what dead replicas (or this replica's previous process) left running."""
        if self.settings.replica_id:
            done = await self.leases.recover_previous_incarnations(self.settings.replica_id)
            if done.failed or done.requeued:
                log.warning("previous run of replica %s left %d responses running: failed %s, requeued %s",
                            self.settings.replica_id, len(done.failed) + len(done.requeued), done.failed,
                            done.requeued)
        await self._recover_expired()
        self._loops = [asyncio.ensure_future(self._claim_loop()), asyncio.ensure_future(self._housekeeping())]

    def stop_accepting(self) -> None:
        """Shutting down: take no new jobs (queued ones stay for the other replicas)."""
        self._accepting = False
        self._wake.set()

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

    # -- accepting a background request ------------------------------------------------------

    async def submit(self, raw: dict[str, Any], req: CreateResponse, context: RequestContext) -> dict[str, Any]:
        """Store the response as queued (with its first events) and start it here if there is room."""
        if not req.store:
            raise InvalidRequest("Background mode requires store to be true.", param="background",
                                 code="invalid_value")
        owner = context.principal
        run = await self.service.start(req, context)
        plan = run.plan
        first = ResponseState(copy.deepcopy(plan.response))
        events = [(0, event_json(first.created())), (1, event_json(first.queued()))]
        local = self._accepting and len(self.jobs) < self.slots
        try:
            await self.store.create(plan.response, owner, plan.input_items, request=raw, leased=local,
                                    events=events)
        except BaseException:
            await plan.sessions.aclose()
            if plan.conversation_id:
                await self.service.conversations.unlock(plan.conversation_id, plan.response_id)
            raise
        accepted = copy.deepcopy(plan.response)
        if local:
            job = _Job(plan.response_id, run=run)
            run.persistence = BackgroundPersistence(self, job)
            self._spawn(job)
        else:
            await plan.sessions.aclose()  # another replica (or this one, later) rebuilds the plan
        return accepted

    # -- running jobs ------------------------------------------------------------------------

    def _spawn(self, job: _Job) -> None:
        self.jobs[job.response_id] = job
        job.task = asyncio.ensure_future(self._run_job(job))
        job.task.add_done_callback(lambda _t: self._job_done(job.response_id))

    def _job_done(self, response_id: str) -> None:
        self.jobs.pop(response_id, None)
        self._wake.set()  # a slot is free

    async def _run_job(self, job: _Job) -> None:
        try:
            if job.run is None:
                job.run = await self._rebuild(job)
                if job.run is None:
                    return
            await self._execute(job)
        except asyncio.CancelledError:
            if not job.cancel:
                raise
        except Exception:
            log.exception("background response %s failed", job.response_id)

    async def _rebuild(self, job: _Job) -> ResponseRun | None:
        """A job claimed from the queue: prepare its run again from the stored request."""
        stored = await self.store.get(job.response_id, None)
        if stored is None or stored.body["status"] != "queued" or stored.request is None:
            return None
        try:
            req = validate_create(stored.request)
            plan = await prepare(req, RequestContext.of(stored.owner), self.service.registry, self.store,
                                 self.service.conversations,
                                 self.settings.mcp_timeout, job.response_id)
        except APIError as exc:
            await self._fail_unstarted(stored.body, exc.message)
            return None
        stored.body["output"] = []
        plan.response = stored.body
        plan.input_items = await self.store.input_items(job.response_id)
        run = ResponseRun(plan, BackgroundPersistence(self, job), self.settings.max_tool_iterations)
        return run

    async def _fail_unstarted(self, body: dict[str, Any], message: str) -> None:
        state = ResponseState({**body, "output": []})
        state.seq = FIRST_WORKER_SEQUENCE - 1
        terminal = state.failed("server_error", message)
        conv = (body.get("conversation") or {}).get("id")
        append = ConversationAppend(conv, [], lock_holder=body["id"]) if conv else None
        if await self.store.finish(state.response, conversation=append, only_if_active=True):
            await self.store.add_events(body["id"], [(terminal.sequence_number, event_json(terminal))])
            self._notify(body["id"])

    async def _execute(self, job: _Job) -> None:
        run = job.run
        assert run is not None
        started = {**run.plan.response, "status": "in_progress"}
        if job.cancel or not await self.leases.mark_started(started):
            await run.plan.sessions.aclose()
            return  # cancelled while queued
        job.log = _EventLog(self.store, job.response_id, self._notify)
        sequence = FIRST_WORKER_SEQUENCE
        try:
            async for batch in run.events():
                for event in batch:
                    if event.type == "response.created":
                        continue  # stored with the response when it was accepted
                    if job.superseded and event.type in TERMINAL_EVENT_TYPES:
                        continue
                    job.log.add(sequence, event_json(event.renumbered(sequence)))
                    sequence += 1
        finally:
            await asyncio.shield(job.log.drain())

    def _cancel_local(self, response_id: str) -> None:
        job = self.jobs.get(response_id)
        if job is None or job.cancel:
            return
        job.cancel = True
        if job.run is not None:
            job.run.cancel_requested = True
        if job.task is not None:
            job.task.cancel()

    # -- loops -------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while self._accepting:
            try:
                free = self.slots - len(self.jobs)
                if free > 0 and await self.leases.has_queued():
                    for response_id in await self.leases.claim(free):
                        self._spawn(_Job(response_id))
            except Exception:
                log.exception("claiming background responses failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def _housekeeping(self) -> None:
        """Polls for cancels of local jobs; renews leases and settles expired ones every lease/3."""
        renew_every = max(self.leases.lease_seconds / 3, POLL_SECONDS)
        last_renew = time.monotonic()
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                for response_id in await self.leases.cancel_requested(list(self.jobs)):
                    self._cancel_local(response_id)
                if time.monotonic() - last_renew >= renew_every:
                    last_renew = time.monotonic()
                    await self.leases.renew()
                    await self._recover_expired()
            except Exception:
                log.exception("lease housekeeping failed")

    async def _recover_expired(self) -> None:
        done = await self.leases.recover_expired()
        if done.failed or done.requeued:
            log.warning("leases expired: failed %s, requeued %s", done.failed, done.requeued)
            self._wake.set()

    # -- cancel --------------------------------------------------------------------------------

    async def cancel(self, response_id: str, owner: str) -> dict[str, Any]:
        body = await self.leases.request_cancel(response_id, owner)
        if body is None:
            raise not_found("Response", response_id)
        self._cancel_local(response_id)
        stored = await self.store.get(response_id, owner)
        return stored.body if stored is not None else body

    # -- following a stream ------------------------------------------------------------------

    def _notify(self, response_id: str) -> None:
        for waiter in self._waiters.get(response_id, ()):
            waiter.set()

    async def check_streamable(self, response_id: str, owner: str) -> None:
        stored = await self.store.get(response_id, owner)
        if stored is None:
            raise not_found("Response", response_id)
        if not stored.background:
            raise InvalidRequest("This response cannot be streamed because it was not created with "
                                 "background=true.", param="stream")

    async def follow(self, response_id: str, after: int) -> AsyncIterator[bytes]:
        """SSE frames of the events after ``after``, then the live ones, up to the terminal event.

        Events come from the database, so this works whichever replica runs the response; a run
        on this replica wakes its followers when it flushes, others are polled.
        """
        waiter = asyncio.Event()
        self._waiters.setdefault(response_id, set()).add(waiter)
        last = after
        try:
            while True:
                waiter.clear()
                rows = await self.store.events_after(response_id, last)
                for seq, data in rows:
                    last = seq
                    kind = orjson.loads(data)["type"]
                    yield sse_frame(kind, data)
                    if kind in TERMINAL_EVENT_TYPES:
                        return
                if rows:
                    continue
                status = await self.store.status(response_id)
                if status is None:
                    return
                if status not in ACTIVE_STATUSES:
                    for frame in await self._final_frames(response_id, status, last):
                        yield frame
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.wait(), FOLLOW_POLL_SECONDS)
        finally:
            waiters = self._waiters.get(response_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[response_id]

    async def _final_frames(self, response_id: str, status: str, last: int) -> list[bytes]:
        """The rest of a finished response's stream. Its worker writes the terminal event just
        after the final row; if that never comes (the worker died, or recovery failed the
        response) the terminal event is built from the stored response. A cancelled response
        has no terminal event: its stream just ends."""
        frames: list[bytes] = []
        deadline = time.monotonic() + (1.0 if status in TERMINAL_STATUSES else 0.0)
        while True:
            for seq, data in await self.store.events_after(response_id, last):
                last = seq
                kind = orjson.loads(data)["type"]
                frames.append(sse_frame(kind, data))
                if kind in TERMINAL_EVENT_TYPES:
                    return frames
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        stored = await self.store.get(response_id, None) if status in TERMINAL_STATUSES else None
        event = terminal_event(stored.body, last + 1) if stored is not None else None
        if event is not None:
            frames.append(sse_frame(event.type, event_json(event)))
        return frames
