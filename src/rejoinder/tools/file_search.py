"""The ``file_search`` server tool: the model searches the request's vector stores.

The model is offered a function ``file_search(query)``. A call becomes a ``file_search_call``
item (queries, status, results: shown with ``include: ["file_search_call.results"]``, always
kept for the model's later turns), with events ``in_progress`` -> ``searching`` -> ``completed``.
It searches through ``VectorService.run_search`` with the tool's ``filters``,
``max_num_results`` and ``ranking_options``, as the request's tenant: another principal's vector
store is the Vector Stores API's 404, before the response starts; a store gone by the time the
model calls fails the call (the model is told) and the response goes on. The results reach the
model numbered (``[1]``...); the markers it repeats become ``file_citation`` annotations.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from openai.types import responses as T

from rejoinder.engine.events import Event
from rejoinder.errors import APIError, InvalidRequest
from rejoinder.item_types import ItemType, ReplayCall, Replayed, ReplayScope
from rejoinder.tenant import Tenant
from rejoinder.tools import search_calls
from rejoinder.tools.citations import CitationStream
from rejoinder.tools.interface import (
    Names,
    Offer,
    Preparation,
    TextFilter,
    ToolGroup,
    ToolKind,
    ToolSetup,
)
from rejoinder.vectors import params as P
from rejoinder.vectors.filters import validate as validate_filters
from rejoinder.vectors.search import SearchRequest

if TYPE_CHECKING:
    from rejoinder.vectors.service import VectorService

log = logging.getLogger(__name__)

TYPE = "file_search"
FUNCTION_NAME = "file_search"
RESULT_CHARS = 8000  # what one call's results may take of the model's context, in characters
DEFAULT_MAX_RESULTS = 10
MAX_STORES = 2  # OpenAI's limit for the file_search tool

# A bound the schema states: a small model under a grammar otherwise writes one endless query.
MAX_MODEL_QUERY = 100
FUNCTION = {
    "type": "function",
    "function": {
        "name": FUNCTION_NAME,
        "description": "Search the user's uploaded files for passages relevant to a question. "
                       "Cite what you use with the result's marker, like [1].",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "maxLength": MAX_MODEL_QUERY,
                                     "description": "A few words to look for in the files."}},
            "required": ["query"],
        },
    },
}


@dataclass(frozen=True)
class FileSearchTool:
    """A request's ``file_search`` declaration, checked."""

    vector_store_ids: list[str]
    filters: dict[str, Any] | None
    max_num_results: int
    ranker: str
    score_threshold: float
    embedding_weight: float
    text_weight: float

    @classmethod
    def parse(cls, tool: dict[str, Any], param: str) -> FileSearchTool:
        body = P.check_object(tool, ("type", "vector_store_ids", "filters", "max_num_results", "ranking_options"),
                              param)
        ids = P.required(body, "vector_store_ids", f"{param}.vector_store_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_STORES:
            raise InvalidRequest(f"Invalid '{param}.vector_store_ids': give 1 to {MAX_STORES} vector store ids.",
                                 param=f"{param}.vector_store_ids", code="invalid_value")
        store_ids = [P.string(v, f"{param}.vector_store_ids[{i}]", max_len=80) or "" for i, v in enumerate(ids)]
        if len(set(store_ids)) != len(store_ids):
            raise InvalidRequest(f"Invalid '{param}.vector_store_ids': a vector store is listed twice.",
                                 param=f"{param}.vector_store_ids", code="invalid_value")
        count = body.get("max_num_results")
        ranking = P.check_object(body.get("ranking_options"), ("ranker", "score_threshold", "hybrid_search"),
                                 f"{param}.ranking_options")
        ranker = ranking.get("ranker") or "auto"
        if ranker not in ("auto", "default-2024-11-15", "none"):
            raise InvalidRequest(f"Invalid value: '{ranker}'. Supported values are: 'auto' and "
                                 "'default-2024-11-15'.", param=f"{param}.ranking_options.ranker",
                                 code="invalid_value")
        threshold = ranking.get("score_threshold")
        threshold = 0.0 if threshold is None else P.number(threshold, f"{param}.ranking_options.score_threshold")
        if not 0.0 <= threshold <= 1.0:
            raise InvalidRequest(f"Invalid '{param}.ranking_options.score_threshold': expected a value between 0 "
                                 "and 1.", param=f"{param}.ranking_options.score_threshold", code="invalid_value")
        weights = (1.0, 1.0)
        if ranking.get("hybrid_search") is not None:
            hp = f"{param}.ranking_options.hybrid_search"
            hybrid = P.check_object(ranking["hybrid_search"], ("embedding_weight", "text_weight"), hp)
            weights = (P.number(P.required(hybrid, "embedding_weight", f"{hp}.embedding_weight"),
                                f"{hp}.embedding_weight"),
                       P.number(P.required(hybrid, "text_weight", f"{hp}.text_weight"), f"{hp}.text_weight"))
            if min(weights) < 0 or max(weights) == 0:
                raise InvalidRequest(f"Invalid '{hp}': weights are non-negative and not both zero.", param=hp,
                                     code="invalid_value")
        return cls(
            vector_store_ids=store_ids,
            filters=validate_filters(body.get("filters"), f"{param}.filters"),
            max_num_results=DEFAULT_MAX_RESULTS if count is None
            else P.integer(count, f"{param}.max_num_results", 1, 50),
            ranker=ranker, score_threshold=threshold, embedding_weight=weights[0], text_weight=weights[1])

    def request(self, query: str) -> SearchRequest:
        return SearchRequest(vector_store_ids=self.vector_store_ids, queries=[query], filters=self.filters,
                             max_num_results=self.max_num_results, ranker=self.ranker,
                             score_threshold=self.score_threshold, embedding_weight=self.embedding_weight,
                             text_weight=self.text_weight)


def parse_query(arguments: str) -> str:
    return search_calls.parse_query(arguments, FUNCTION_NAME, P.MAX_QUERY_CHARS)


def model_text(item: dict[str, Any], numbers: list[int]) -> str:
    """What the model reads for a call, now and on every later turn."""
    queries = "; ".join(item.get("queries") or [])
    if item.get("status") == "failed":
        return f'The file search for "{queries}" failed; answer without it, and say so.'
    results = item.get("results") or []
    if not results:
        return f'No passage of the files matches "{queries}".'
    return search_calls.results_text(
        f'Results for "{queries}".',
        [(n, r.get("filename") or "file", r.get("text") or "") for n, r in zip(numbers, results, strict=False)],
        RESULT_CHARS)


def _replay(item: dict[str, Any], scope: ReplayScope) -> Replayed:
    numbers = search_calls.replay_numbers(scope, len(search_calls.sources_of(item)))
    query = " ".join(item.get("queries") or [])
    return ReplayCall(item["id"], FUNCTION_NAME, json.dumps({"query": query}), model_text(item, numbers))


class FileSearchCall(search_calls.SearchCall):
    item_type = "file_search_call"
    in_progress_event = T.ResponseFileSearchCallInProgressEvent
    group: FileSearchGroup

    def starting_fields(self) -> dict[str, Any]:
        return {"queries": [], "results": None}

    async def run(self) -> AsyncIterator[list[Event]]:
        item = self.state.output[self.index]
        tool = self.group.tool
        error: str | None
        try:
            query = parse_query(self.arguments)
        except ValueError as exc:
            query, error = "", str(exc)
        else:
            error = None
        item["queries"] = [query] if query else []
        item["status"] = "searching"
        yield [self._event(T.ResponseFileSearchCallSearchingEvent, "searching")]
        if error is None and tool is not None and self.group.service is not None and self.group.tenant is not None:
            with self.env.observer.tool_call("file_search", FUNCTION_NAME) as observed:
                try:
                    searched, results = await self.group.service.run_search(self.group.tenant, tool.request(query))
                except APIError as exc:
                    log.info("response %s: file_search failed: %s", self.env.response_id, exc.message)
                    observed.failed(exc.code or "error")
                    error = exc.message
            if error is None:
                item["queries"] = searched
                item["results"] = [{"file_id": r.file_id, "filename": r.filename, "score": r.score,
                                    "attributes": r.attributes, "text": "\n".join(r.content)} for r in results]
        if error is not None:
            item["status"] = "failed"
            yield [self.state.item_done(self.index)]
            return
        item["status"] = "completed"
        search_calls.register(self.group.sources, item)
        yield [self._event(T.ResponseFileSearchCallCompletedEvent, "completed"), self.state.item_done(self.index)]


class FileSearchGroup(ToolGroup):
    def __init__(self, kind: FileSearchKind, declarations: list[tuple[str, dict[str, Any]]], names: Names,
                 setup: ToolSetup):
        self.kind = kind
        self.service: VectorService | None = setup.services.get("vectors")
        self.tenant: Tenant = setup.tenant
        self.sources = search_calls.sources(setup.shared)
        self.tool: FileSearchTool | None = None
        if len(declarations) > 1:
            raise InvalidRequest("Declare the file_search tool once.", param=declarations[1][0],
                                 code="invalid_value")
        self.offer: search_calls.SearchOffer | None = None
        if declarations:
            param, declaration = declarations[0]
            self.tool = FileSearchTool.parse(declaration, param)
            self.param = param
            self.offer = search_calls.SearchOffer(FUNCTION_NAME, FUNCTION, lambda env: FileSearchCall(env, self))
            names.claim(self.offer.name)

    async def prepare(self, prep: Preparation) -> None:
        search_calls.seed(self.sources, prep.items)  # earlier turns' results keep their markers
        if self.tool is None:
            return
        if self.service is None:
            raise InvalidRequest("file_search is not available: this server has no vector stores.",
                                 param=f"{self.param}.type", code="unsupported_value")
        self.service.require_available()
        for store_id in self.tool.vector_store_ids:  # another principal's store: the API's 404
            await self.service.stores.get_row(store_id, self.tenant)

    def offers(self) -> Sequence[Offer]:
        return [self.offer] if self.offer else []

    def choose(self, choice: dict[str, Any], param: str, allowed: bool) -> set[str]:
        if self.offer is None:
            raise InvalidRequest("Tool choice 'file_search' names a tool that is not in 'tools'.",
                                 param=f"{param}.type", code="invalid_value")
        return {self.offer.name}

    def text_filter(self) -> TextFilter | None:
        return CitationStream(self.sources) if self.tool is not None or self.sources else None


class FileSearchKind(ToolKind):
    type = "file_search"
    on_server = True
    choice_types = ("file_search",)
    item_types = (ItemType("file_search_call", "fs", _replay),)

    def group(self, declarations: list[tuple[str, dict[str, Any]]], names: Names, setup: ToolSetup) -> ToolGroup:
        return FileSearchGroup(self, declarations, names, setup)
