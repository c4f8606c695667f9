"""Leases per run: each running response holds its own lease, renewed only while its task lives.

A ``RunLease`` covers what a run holds in the database: its response row (stored turns, background
jobs) and its conversation lock (store=false turns too). Every third of ``lease_seconds`` the lease
renews itself, in a task of its own, as long as the task driving the run is alive; the renewal also
keeps the run's partial output (``draft`` items), so what the client saw survives the run.

When the driving task ends, the run has either settled itself (stored its final state: the
persistence calls ``release``) or not: a task killed or crashed without storing the response. The
lease then settles it at once (failed, with the output it had produced) and releases its
conversation. If even that fails, the lease lapses: ``LeaseKeeper``'s recovery pass, on this
replica (which knows the run has no live task) or on any other, fails it from its drafts.

A replica that dies stops renewing everything it held; the other replicas settle it once its
leases lapse, and its next incarnation (same ``replica_id``) at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rejoinder.config import Settings
from rejoinder.store.conversations import ConversationStore
from rejoinder.store.leases import LeaseStore

if TYPE_CHECKING:
    from rejoinder.engine.loop import ResponseRun

log = logging.getLogger(__name__)

ABANDONED = "The response was interrupted before it finished."


def lease_owner_token(settings: Settings) -> str:
    """``<replica id>/<incarnation>``: a restarted replica with a fixed id knows its old rows."""
    replica = settings.replica_id or f"{socket.gethostname()}-{os.getpid()}"
    return f"{replica}/{secrets.token_hex(4)}"


class RunLease:
    """One run's lease. Made by ``LeaseKeeper.open`` in the task that prepares the run; ``drive``
    hands it to the task that runs it; the run's persistence calls ``release`` once its final
    state is stored (or it stores nothing)."""

    def __init__(self, keeper: LeaseKeeper, response_id: str, conversation_id: str | None):
        self.keeper = keeper
        self.response_id = response_id
        self.conversation_id = conversation_id
        self.row = False  # the response's row exists, leased to this replica
        self.run: ResponseRun | None = None  # its state is the partial output
        self.drafts = False  # a renewal stored partial output: the final write replaces it
        self.settled = False
        self._drafted_seq = -1
        self._task: asyncio.Future[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._busy: asyncio.Task[None] | None = None  # a renewal under way
        self._settling: asyncio.Task[None] | None = None  # storing it as failed (see ``_task_done``)
        current = asyncio.current_task()
        if current is not None:
            self._bind(current)
        self._arm()

    @property
    def task(self) -> asyncio.Future[Any] | None:
        """The task running the response (the one that prepares it, until ``drive``)."""
        return self._task

    # -- what the run's code calls -------------------------------------------------------------

    def drive(self, run: ResponseRun | None, task: asyncio.Future[Any]) -> None:
        """``task`` runs the response from now on (``run``: its state, once it exists)."""
        if run is not None:
            self.run = run
        self._bind(task)

    def release(self) -> None:
        """The run settled itself (or holds nothing any more): stop renewing."""
        if self.settled:
            return
        self.settled = True
        if self._timer is not None:
            self._timer.cancel()
        self.keeper._forget(self)

    # -- renewing ----------------------------------------------------------------------------

    def _bind(self, task: asyncio.Future[Any]) -> None:
        self._task = task
        task.add_done_callback(self._task_done)

    def _arm(self) -> None:
        if not self.settled and not self.keeper.closing:
            self._timer = asyncio.get_running_loop().call_later(self.keeper.renew_every, self._due)

    def _due(self) -> None:
        self._timer = None
        if not self.settled and self._busy is None:
            self._busy = asyncio.ensure_future(self._renew())

    async def _renew(self) -> None:
        try:
            drafts = None
            run = self.run
            if self.row and run is not None and run.state.seq != self._drafted_seq:
                self._drafted_seq = run.state.seq
                drafts = list(run.state.output)
                # Before the write: a final write that starts meanwhile must clear what it stores.
                self.drafts = True
            held = await self.keeper.leases.renew(self.response_id, row=self.row, conversation_id=self.conversation_id,
                                                  drafts=drafts)
            if not held:
                self.row = False  # cancelled, or settled elsewhere: its own end decides the rest
        except Exception:
            log.exception("renewing the lease of response %s failed; retrying", self.response_id)
            self._drafted_seq = -1
        finally:
            self._busy = None
            self._arm()

    # -- a run that ended without settling ----------------------------------------------------

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        if task is not self._task or self.settled or self.keeper.closing:
            return
        failure = None if task.cancelled() else task.exception()
        log.error("response %s: the task running it ended without storing it; storing it as failed",
                  self.response_id, exc_info=failure)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._settling = asyncio.ensure_future(self._settle())

    async def _settle(self) -> None:
        """Fail the response with the output its run had produced (the drafts if it never ran
        here) and release its conversation; retried at every renewal time until it works."""
        if self._busy is not None:
            await asyncio.gather(self._busy, return_exceptions=True)
        while not self.keeper.closing:
            try:
                if self.row:
                    output = list(self.run.state.output) if self.run is not None else None
                    await self.keeper.leases.fail(self.response_id, output, ABANDONED)
                elif self.conversation_id:
                    await self.keeper.conversations.unlock(self.conversation_id, self.response_id)
            except Exception:
                log.exception("storing abandoned response %s failed; retrying", self.response_id)
                await asyncio.sleep(self.keeper.renew_every)
                continue
            self.release()
            return


class LeaseKeeper:
    """This replica's runs' leases, and the recovery of lapsed ones (its own included, for runs
    it knows have no live task)."""

    def __init__(self, leases: LeaseStore, conversations: ConversationStore, replica_id: str | None = None,
                 on_takeover: Callable[[int], None] | None = None):
        self.leases = leases
        self.conversations = conversations
        self.replica_id = replica_id
        self.on_takeover = on_takeover  # told how many lapsed runs each recovery settled (metrics)
        self.renew_every = leases.lease_seconds / 3
        self.live: dict[str, RunLease] = {}
        self.closing = False
        self._loop: asyncio.Task[None] | None = None

    def open(self, response_id: str, conversation_id: str | None) -> RunLease:
        lease = RunLease(self, response_id, conversation_id)
        self.live[response_id] = lease
        return lease

    def _forget(self, lease: RunLease) -> None:
        if self.live.get(lease.response_id) is lease:
            del self.live[lease.response_id]

    # -- recovery ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Settle what dead replicas (or this replica's previous process) left running, then keep
        doing so every third of a lease."""
        if self.replica_id:
            done = await self.leases.recover_previous_incarnations(self.replica_id)
            self._took_over(len(done.failed) + len(done.requeued))
            if done.failed or done.requeued:
                log.warning("previous run of replica %s left %d responses running: failed %s, requeued %s",
                            self.replica_id, len(done.failed) + len(done.requeued), done.failed, done.requeued)
        await self.recover()
        self._loop = asyncio.ensure_future(self._recovery_loop())

    async def recover(self) -> None:
        done = await self.leases.recover_expired(live=list(self.live))
        self._took_over(len(done.failed) + len(done.requeued))
        if done.failed or done.requeued:
            log.warning("leases expired: failed %s, requeued %s", done.failed, done.requeued)

    def _took_over(self, count: int) -> None:
        if count and self.on_takeover is not None:
            self.on_takeover(count)

    async def _recovery_loop(self) -> None:
        while True:
            await asyncio.sleep(self.renew_every)
            try:
                await self.recover()
            except Exception:
                log.exception("settling expired leases failed; retrying")

    async def stop(self) -> None:
        """Stop renewing and recovering: what is still held lapses, for the others to settle."""
        self.closing = True
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        under_way = []
        for lease in list(self.live.values()):
            if lease._timer is not None:
                lease._timer.cancel()
            under_way += [t for t in (lease._busy, lease._settling) if t is not None and not t.done()]
        for task in under_way:
            task.cancel()
        await asyncio.gather(*under_way, return_exceptions=True)
