"""The ``file_search`` server tool: the model searches the request's vector stores.

The model is offered a function ``file_search(query)``. A call becomes a ``file_search_call``
item (queries, status, and with ``include: ["file_search_call.results"]`` its results), searched
through ``VectorService.run_search`` with the tool's ``filters``, ``max_num_results`` and
``ranking_options``, as the request's tenant: a vector store of another principal is the Vector
Stores API's 404, checked before the response starts and again when the call runs. The results
reach the model numbered (``[1]``...) so that the markers it repeats become ``file_citation``
annotations (``tools/citations.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rejoinder.errors import APIError, InvalidRequest
from rejoinder.tenant import Tenant
from rejoinder.tools.citations import Source, Sources
from rejoinder.vectors import params as P
from rejoinder.vectors.filters import validate as validate_filters
from rejoinder.vectors.search import SearchRequest, SearchResult
from rejoinder.vectors.service import VectorService

TYPE = "file_search"
FUNCTION_NAME = "file_search"
INCLUDE_RESULTS = "file_search_call.results"
DEFAULT_MAX_RESULTS = 10
MAX_STORES = 2  # OpenAI's limit for the file_search tool

FUNCTION = {
    "type": "function",
    "function": {
        "name": FUNCTION_NAME,
        "description": "Search the user's uploaded files for passages relevant to a question. "
                       "Cite what you use with the result's marker, like [1].",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to look for in the files."}},
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


async def check_access(service: VectorService, tenant: Tenant, tool: FileSearchTool) -> None:
    """Before the response starts: every store is the tenant's (else the API's 404) and usable."""
    service.require_available()
    for store_id in tool.vector_store_ids:
        await service.stores.get_row(store_id, tenant)


def parse_query(arguments: str) -> str:
    """The ``query`` of the model's arguments; ValueError with a message for the model."""
    try:
        args = json.loads(arguments or "{}")
    except ValueError:
        raise ValueError("The arguments are not valid JSON; call file_search with {\"query\": \"...\"}.") from None
    query = args.get("query") if isinstance(args, dict) else None
    if isinstance(query, list):  # some models send OpenAI's internal form, a list of queries
        query = " ".join(q for q in query if isinstance(q, str))
    if not isinstance(query, str) or not query.strip():
        raise ValueError("The query is empty; call file_search with {\"query\": \"...\"}.")
    return query.strip()[:P.MAX_QUERY_CHARS]


async def search(service: VectorService, tenant: Tenant, tool: FileSearchTool,
                 query: str) -> tuple[list[str], list[SearchResult]]:
    """The queries as searched and the results; ``APIError`` (a 404 for a store gone or foreign,
    a 503 for the embedding model) is the caller's to report as a failed call."""
    return await service.run_search(tenant, tool.request(query))


def call_item(item_id: str, queries: list[str]) -> dict[str, Any]:
    return {"id": item_id, "type": "file_search_call", "status": "in_progress", "queries": queries, "results": None}


def result_entries(results: list[SearchResult]) -> list[dict[str, Any]]:
    """The item's ``results`` (shown with ``include: ["file_search_call.results"]``)."""
    return [{"file_id": r.file_id, "filename": r.filename, "score": r.score, "attributes": r.attributes,
             "text": "\n".join(r.content)} for r in results]


def sources(item: dict[str, Any]) -> list[Source]:
    """The citable sources of a stored ``file_search_call``, in the order the model saw them."""
    return [Source("file", file_id=r.get("file_id") or "", filename=r.get("filename") or "")
            for r in item.get("results") or [] if r.get("file_id")]


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[:cut if cut > limit // 2 else limit] + " ..."


def model_text(item: dict[str, Any], numbers: list[int], budget_chars: int, error: str | None = None) -> str:
    """What the model reads for a call: each result under its marker, the marker repeated after
    the text (a model that copies a sentence copies its marker with it), within ``budget_chars``."""
    if item.get("status") == "failed":
        return error or "The file search failed."
    results = item.get("results")
    queries = "; ".join(item.get("queries") or [])
    if results is None:
        return f'Searched the files for "{queries}". (The results of this earlier search were not kept.)'
    if not results:
        return f'No passage of the files matches "{queries}".'
    share = max(200, budget_chars // len(results))
    lines = [f"Results for \"{queries}\". Cite a result by writing its marker, like [{numbers[0]}], "
             "after the sentence that uses it."]
    for n, r in zip(numbers, results, strict=False):
        lines.append(f"[{n}] {r.get('filename')}: {_shorten(r.get('text') or '', share)} [{n}]")
    return "\n".join(lines)


def register(item: dict[str, Any], registry: Sources) -> list[int]:
    """Number the item's sources in ``registry``; the numbers the model is shown."""
    return [registry.add(s) for s in sources(item)]


def failure_text(exc: Exception) -> str:
    if isinstance(exc, APIError):
        return f"The file search failed: {exc.message}"
    return f"The file search failed: {exc}"
