"""One WebSocket connection's responses: its lanes of queued creates and its store=false chains.

Everything a connection holds is here, explicit, and dies with it: the request context of the
upgrade (its principal is the owner of every response the socket makes), the ``response.create``
events waiting their turn, and the chains it can continue without the store.

- Lanes. Creates with the same ``stream_id`` (none is a lane too) run one after another, in the
  order they arrived: Codex sends the next create before the previous response has ended, and
  the next one usually continues it. Different lanes run at once.
- Chains. A store=false response that completed is kept (its whole context: the chain before it,
  its input, its output) so that a create naming it in ``previous_response_id`` continues it with
  only its new input, as Codex does after its ``generate: false`` warm-up. The last
  ``cached_responses`` are kept; a continuation that fails evicts the response it continued, as
  OpenAI does. Stored responses are always read from the store, so they continue on any replica.
- Errors. A refused create is one ``error`` message, in its lane's order; the socket stays open.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rejoinder.api.create_response import validate_create
from rejoinder.config import WebSocketConfig
from rejoinder.engine.events import Event
from rejoinder.engine.loop import ResponseRun
from rejoinder.errors import APIError, InvalidRequest, NotFound, Overloaded
from rejoinder.http.body import parse_json_body
from rejoinder.http.ws_frames import error_message, event_message, object_message
from rejoinder.http.ws_steering import SteerFailed, Steering
from rejoinder.request_context import RequestContext
from rejoinder.services.responses import ResponsesService

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]
_CONTINUABLE = ("completed", "incomplete")


@dataclass
class _Create:
    body: dict[str, Any]
    stream_id: str | None
    generate: bool


@dataclass
class _Lane:
    queue: deque[_Create] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


def _unknown_event(kind: Any) -> InvalidRequest:
    return InvalidRequest(f"Invalid value: '{kind}'. Supported values are: 'response.create' and 'response.steer'.",
                          param="type", code="invalid_value")


def _create_fields(event: dict[str, Any]) -> _Create:
    """The create's body without the socket's own fields (``type``, ``stream_id``, ``generate``;
    ``stream`` is implied and accepted as ``true`` or absent)."""
    body = dict(event)
    body.pop("type")
    stream_id = body.pop("stream_id", None)
    if stream_id is not None and (not isinstance(stream_id, str) or not 0 < len(stream_id) <= 120):
        raise InvalidRequest("Invalid 'stream_id': expected a string of 1 to 120 characters.", param="stream_id",
                             code="invalid_value")
    generate = body.pop("generate", True)
    if not isinstance(generate, bool):
        raise InvalidRequest("Invalid type for 'generate': expected a boolean.", param="generate",
                             code="invalid_type")
    stream = body.pop("stream", None)
    if stream not in (None, True):
        raise InvalidRequest("Over a WebSocket every response streams: 'stream' must be true or absent.",
                             param="stream", code="invalid_value")
    if body.get("background"):
        raise InvalidRequest("Background responses are not supported over a WebSocket.", param="background",
                             code="unsupported_parameter")
    body.pop("background", None)
    return _Create(body, stream_id, generate)


class SocketSession:
    def __init__(self, service: ResponsesService, context: RequestContext, config: WebSocketConfig, send: Send):
        self.service = service
        self.context = context
        self.config = config
        self.send = send  # puts one message in the connection's bounded outbox (waits when it is full)
        self.chains: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self.lanes: dict[str | None, _Lane] = {}
        self.queued = 0  # creates received and not yet started
        self.steering = Steering(config.max_pending_steers)
        self.finished: deque[str] = deque(maxlen=64)  # responses this socket ran (steering's answers)

    @property
    def busy(self) -> bool:
        """Whether a response is running or waiting (an idle timeout does not apply then)."""
        return bool(self.lanes)

    # -- client events -----------------------------------------------------------------------

    async def receive(self, raw: bytes) -> None:
        """One client message: queued when it is a create, else answered at once."""
        stream_id = None
        try:
            event = parse_json_body(raw, self.context.limits.max_json_depth)
            if not isinstance(event, dict):
                raise InvalidRequest("A client event must be a JSON object.", code="invalid_json")
            if isinstance(event.get("stream_id"), str):
                stream_id = event["stream_id"]
            kind = event.get("type")
            if kind == "response.create":
                self._enqueue(_create_fields(event))
            elif kind == "response.steer":
                await self._steer(event)
            elif kind is None:
                raise InvalidRequest("Missing required parameter: 'type'.", param="type",
                                     code="missing_required_parameter")
            else:
                raise _unknown_event(kind)
        except APIError as exc:
            await self.send(error_message(exc, stream_id))

    async def _steer(self, event: dict[str, Any]) -> None:
        try:
            accepted, lane = self.steering.steer(event, set(self.chains) | set(self.finished))
        except SteerFailed as failure:
            await self.send(object_message(self.steering.failed(event, failure)))
            return
        await self.send(object_message(accepted, lane))

    def _enqueue(self, create: _Create) -> None:
        if self.queued >= self.config.max_queued_creates:
            raise Overloaded(f"Too many queued response.create events on this connection (at most "
                             f"{self.config.max_queued_creates}); wait for a response to finish.")
        lane = self.lanes.get(create.stream_id)
        if lane is None:
            if len(self.lanes) >= self.config.max_lanes:
                raise Overloaded(f"Too many stream_id lanes running at once on this connection (at most "
                                 f"{self.config.max_lanes}).")
            lane = self.lanes[create.stream_id] = _Lane()
        lane.queue.append(create)
        self.queued += 1
        if lane.task is None:
            lane.task = asyncio.ensure_future(self._drain(create.stream_id, lane))

    async def _drain(self, stream_id: str | None, lane: _Lane) -> None:
        try:
            while lane.queue:
                create = lane.queue.popleft()
                self.queued -= 1
                try:
                    await self._run(create)
                except APIError as exc:
                    await self.send(error_message(exc, stream_id))
        except Exception:
            log.exception("WebSocket lane %r failed", stream_id)
        finally:
            if self.lanes.get(stream_id) is lane:
                del self.lanes[stream_id]

    # -- one response ----------------------------------------------------------------------

    async def _run(self, create: _Create) -> None:
        body = self.steering.prepend(create.body)
        req = validate_create(body, self.service.tools)
        previous = req.previous_response_id
        chain = self.chains.get(previous) if previous else None
        try:
            run = await self.service.start(req, self.context, chain=list(chain) if chain is not None else None,
                                           generate=create.generate)
        except APIError as exc:
            self._evict(previous)
            if isinstance(exc, NotFound) and exc.param == "previous_response_id":
                raise InvalidRequest(exc.message, param="previous_response_id",
                                     code="previous_response_not_found") from exc
            raise
        stream_id = create.stream_id
        self.steering.started(run.plan.response_id, create.body, stream_id,
                              steerable=not (req.conversation or req.context_management))

        async def sink(batch: list[Event]) -> None:
            for event in batch:
                await self.send(event_message(event, stream_id))

        await self.service.deliver(run, sink)
        self._keep(run, previous)
        self.finished.append(run.plan.response_id)
        events, successor = self.steering.ended(run.state.response)
        for event in events:
            await self.send(object_message(event, stream_id))
        if successor is not None:  # the steers' input, committed by the successor's response.created
            await self._run(_Create(successor, stream_id, True))

    def _evict(self, previous: str | None) -> None:
        if previous:
            self.chains.pop(previous, None)

    def _keep(self, run: ResponseRun, previous: str | None) -> None:
        """Remember a store=false response's context for the next create that continues it."""
        response = run.state.response
        if response["status"] not in _CONTINUABLE:
            self._evict(previous)  # a failed continuation: its base is not trusted again
            return
        if run.plan.store or run.plan.conversation_id:
            return  # continued from the store (any replica) or its conversation
        self._remember(response["id"], [*run.plan.history, *run.plan.input_items, *response["output"]])

    def _remember(self, response_id: str, items: list[dict[str, Any]]) -> None:
        self.chains[response_id] = items
        self.chains.move_to_end(response_id)
        while len(self.chains) > self.config.cached_responses:
            self.chains.popitem(last=False)

    async def close(self) -> None:
        """The client left: creates that never started are dropped (nothing was acknowledged);
        running responses finish and are stored (``ResponsesService.deliver``)."""
        tasks = [lane.task for lane in self.lanes.values() if lane.task is not None]
        for lane in self.lanes.values():
            self.queued -= len(lane.queue)
            lane.queue.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
