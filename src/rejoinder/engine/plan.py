"""Everything decided before the first event of a response."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rejoinder.backends.base import Admission, ModelRoute
from rejoinder.crypto.sealing import KeyRing
from rejoinder.engine.compaction import Compactor, Summaries
from rejoinder.tenant import Tenant
from rejoinder.tools.toolset import Toolset


@dataclass
class RunPlan:
    response: dict[str, Any]  # the Response object as first emitted
    tenant: Tenant  # whose response it is: every read it makes is scoped to it
    route: ModelRoute
    admission: Admission  # what the backend is told on each inference step (ModelRegistry.admit)
    params: dict[str, Any]  # the validated request
    history: list[dict[str, Any]]  # earlier items (previous_response_id chain or conversation)
    input_items: list[dict[str, Any]]  # this turn's input, ids assigned
    toolset: Toolset  # the request's tools, prepared (tools/toolset.py)
    store: bool = True
    conversation_id: str | None = None
    kept_request: dict[str, Any] | None = None  # what of the request is stored with it (client_metadata)
    # Compaction (issue 19): the request's context_management entries and whether its
    # input ended with a compaction_trigger item, validated.
    context_management: list[dict[str, Any]] = field(default_factory=list)
    compaction_requested: bool = False
    request_id: str | None = None  # the request that started it (its log lines carry the id)
    # False: a WebSocket warm-up (``generate: false``): the response completes with no output and
    # no model call, its input kept as context for the next response.
    generate: bool = True
    # Reasoning (engine/reasoning.py): the server's key ring (seals reasoning for include
    # reasoning.encrypted_content) and the text of reasoning items that came only as sealed blobs.
    sealing: KeyRing | None = None
    unsealed: dict[str, str] = field(default_factory=dict)
    # The context's compaction items, opened, and the run's own compaction when the request asks
    # for one (engine/compaction.py ``attach``; the model reads ``compaction.view`` of the context).
    summaries: Summaries = field(default_factory=Summaries)
    compactor: Compactor | None = None

    @property
    def response_id(self) -> str:
        return self.response["id"]
