"""Searching vector stores: the vector ranking and the full-text ranking, fused.

Each query is ranked twice in the database, by cosine distance to its embedding and by full-text
relevance (FTS5's bm25 / PostgreSQL's ts_rank_cd), both within the searched stores. Attribute
filters are compiled to SQL and evaluated once per file; both rankings then read only the chunks
of the files that passed. The rankings of every query are fused by reciprocal
rank fusion: a chunk's fused score is the sum over rankings of 1 / (60 + rank), reported divided
by the best possible sum, so a chunk first in every ranking scores 1.0. With ``ranker: "none"``
only the vector rankings count and ``score`` is the cosine similarity.

``search`` is the one entry point, for the HTTP route and for the ``file_search`` tool.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from rejoinder.errors import InvalidRequest
from rejoinder.store.db import Database
from rejoinder.store.schema import files, vector_store_files
from rejoinder.vectors.embeddings import Embedders
from rejoinder.vectors.filters import compile_filter
from rejoinder.vectors.index import PG_TEXT_CONFIG, ChunkIndex, PgVector, vec_table, vector_blob, vector_literal

RRF_K = 60
# The words of a query that are not among the lexemes in over half of the chunks, per pg_stats
# (ANALYZE's most common elements of the tsvector column and their frequencies).
_PG_COMMON = text(f"""
SELECT w FROM unnest(CAST(:words AS text[])) AS w
WHERE NOT EXISTS (
  SELECT 1 FROM unnest(to_tsvector('{PG_TEXT_CONFIG}', w)) AS t, pg_stats AS s,
       unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS m(elem, freq)
  WHERE s.schemaname = current_schema() AND s.tablename = 'vector_chunks' AND s.attname = 'tsv'
    AND m.elem = t.lexeme AND m.freq > 0.5)
""").bindparams(bindparam("words", type_=ARRAY(Text)))
MAX_TERMS = 64
STOPWORDS = frozenset(
    "a an and are as at be but by can could did do does for from had has have how i if in into is it its me my "
    "of on or our should so than that the their them then there these they this to was we were what when where "
    "which who whom why will with would you your".split())


@dataclass(frozen=True)
class SearchResult:
    """One chunk: what the search API returns per result, and what a file_search tool cites."""

    file_id: str
    filename: str
    score: float
    attributes: dict[str, Any] | None
    content: list[str]
    vector_store_id: str

    def body(self) -> dict[str, Any]:
        return {"file_id": self.file_id, "filename": self.filename, "score": self.score,
                "attributes": self.attributes, "content": [{"type": "text", "text": t} for t in self.content]}


@dataclass(frozen=True)
class SearchRequest:
    vector_store_ids: list[str]
    queries: list[str]
    filters: dict[str, Any] | None = None
    max_num_results: int = 10
    ranker: str = "auto"
    score_threshold: float = 0.0
    rewrite_query: bool = False
    embedding_weight: float = 1.0  # the file_search tool's ranking_options.hybrid_search weights
    text_weight: float = 1.0


def rewrite(query: str) -> str:
    """A query rewritten for search: lower case, without question words and punctuation. (OpenAI
    rewrites with a model; this deterministic rewrite needs none.)"""
    words = [w for w in re.findall(r"\w+", query.lower()) if w not in STOPWORDS]
    return " ".join(words) or query.strip()


def terms(query: str) -> list[str]:
    return list(dict.fromkeys(w for w in re.findall(r"\w+", query.lower()) if w not in STOPWORDS))[:MAX_TERMS]


class Searcher:
    def __init__(self, db: Database, index: ChunkIndex, embedders: Embedders):
        self.db = db
        self.index = index
        self.embedders = embedders

    async def search(self, request: SearchRequest, models: dict[str, str]) -> tuple[list[str], list[SearchResult]]:
        """``models``: each store's embedding model (the caller checked the stores are the owner's).
        Returns the queries as searched (rewritten or not) and the results, best first."""
        queries = [rewrite(q) for q in request.queries] if request.rewrite_query else request.queries
        by_model: dict[str, list[str]] = defaultdict(list)
        for store_id in request.vector_store_ids:
            by_model[models[store_id]].append(store_id)
        embedded = {model: await self.embedders.get(model).embed(queries) for model in by_model}
        depth = min(max(request.max_num_results * 4, 40), 200)
        hybrid = request.ranker != "none"

        def txn(conn: Connection) -> list[SearchResult]:
            allowed = self._allowed_files(conn, request.vector_store_ids, request.filters)
            if allowed == []:
                return []
            rankings: list[list[tuple[int, float]]] = []
            weights: list[float] = []
            for model, store_ids in by_model.items():
                for vector in embedded[model]:
                    rankings.append(self._by_vector(conn, store_ids, vector, allowed, depth))
                    weights.append(request.embedding_weight)
            if hybrid and request.text_weight > 0:
                for query in queries:
                    words = self._discriminating(conn, terms(query))
                    if words:
                        rankings.append(self._by_text(conn, request.vector_store_ids, words, allowed, depth))
                        weights.append(request.text_weight)
            scored = self._fuse(rankings, weights, hybrid)
            kept = [(cid, s) for cid, s in scored if s >= request.score_threshold][:request.max_num_results]
            return self._results(conn, kept)

        return queries, await self.db.read(txn)

    @staticmethod
    def _fuse(rankings: list[list[tuple[int, float]]], weights: list[float],
              hybrid: bool) -> list[tuple[int, float]]:
        if not hybrid:  # the best cosine similarity any query gave the chunk
            best: dict[int, float] = {}
            for ranking in rankings:
                for chunk_id, distance in ranking:
                    best[chunk_id] = max(best.get(chunk_id, -1.0), 1.0 - distance)
            return sorted(((c, max(0.0, min(1.0, s))) for c, s in best.items()), key=lambda x: -x[1])
        fused: dict[int, float] = defaultdict(float)
        for ranking, weight in zip(rankings, weights, strict=True):
            for rank, (chunk_id, _) in enumerate(ranking, start=1):
                fused[chunk_id] += weight / (RRF_K + rank)
        top = sum(weights) / (RRF_K + 1) or 1.0
        return sorted(((c, s / top) for c, s in fused.items()), key=lambda x: (-x[1], x[0]))

    @staticmethod
    def _allowed_files(conn: Connection, store_ids: list[str], filters: dict[str, Any] | None) -> list[str] | None:
        """The files the filters let through (None: no filters, every file). The filters are
        evaluated once per file here, and the rankings then read only those files' chunks."""
        if filters is None:
            return None
        f = vector_store_files
        in_stores = f.c.vector_store_id.in_(store_ids)
        query = select(f.c.file_id).where(in_stores,
                                          compile_filter(filters, f.c.attributes, conn.dialect.name == "postgresql"))
        allowed = list(dict.fromkeys(r[0] for r in conn.execute(query)))
        everyone = conn.execute(select(func.count(func.distinct(f.c.file_id))).where(in_stores)).scalar()
        return None if allowed and len(allowed) == everyone else allowed  # nothing filtered out

    def _scope(self, store_ids: list[str], allowed: list[str] | None) -> list[Any]:
        """The WHERE of a ranking: the searched stores, and the files the filters allow."""
        c = self.index.table
        where: list[Any] = [c.c.vector_store_id.in_(store_ids)]
        if allowed is not None:
            where.append(c.c.file_id.in_(allowed))
        return where

    def _by_vector(self, conn: Connection, store_ids: list[str], vector: list[float],
                   allowed: list[str] | None, depth: int) -> list[tuple[int, float]]:
        if not self.index.postgres and allowed is None:
            return self._nearest_sqlite(conn, store_ids, vector, depth)
        c = self.index.table
        distance: Any
        if self.index.postgres:
            distance = c.c.embedding.op("<=>", return_type=Float)(
                cast(bindparam("q", vector_literal(vector), type_=Text), PgVector()))
        else:
            distance = func.vec_distance_cosine(c.c.embedding, literal(vector_blob(vector)))
        query = select(c.c.id, distance.label("d")).where(*self._scope(store_ids, allowed)) \
            .order_by(literal_column("d")).limit(depth)
        return [(int(r.id), float(r.d)) for r in conn.execute(query)]

    @staticmethod
    def _nearest_sqlite(conn: Connection, store_ids: list[str], vector: list[float],
                        depth: int) -> list[tuple[int, float]]:
        """sqlite-vec's exact k-nearest scan of each store's partition (twice as fast as ranking
        the BLOBs one by one at 10,000 chunks), the stores' neighbours merged."""
        name = vec_table(len(vector))
        if conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = :n"), {"n": name}).first() is None:
            return []  # nothing of this dimension was ever indexed
        found: list[tuple[int, float]] = []
        for store_id in store_ids:
            found.extend((int(r[0]), float(r[1])) for r in conn.execute(
                text(f"SELECT rowid, distance FROM {name} WHERE embedding MATCH :q AND k = :k "
                     "AND vector_store_id = :s"), {"q": vector_blob(vector), "k": depth, "s": store_id}))
        return sorted(found, key=lambda x: x[1])[:depth]

    def _discriminating(self, conn: Connection, words: list[str]) -> list[str]:
        """The words that can move a ranking: a word in more than half of all chunks has no weight
        in bm25 (its idf is clamped to ~0), yet matching it would make every chunk that holds it
        a candidate to rank. Dropping it changes no score and spares ranking most of the index.
        PostgreSQL's ``ts_rank_cd`` weighs no word by rarity, so the same words go there too:
        they are found in the planner's statistics (a catalog read, not a count)."""
        if not words:
            return words
        if self.index.postgres:
            return [r[0] for r in conn.execute(_PG_COMMON, {"words": words})]
        total = conn.execute(select(func.count()).select_from(self.index.table)).scalar() or 0
        kept = []
        for word in words:
            hits = conn.execute(text("SELECT count(*) FROM vector_chunks_fts WHERE vector_chunks_fts MATCH :m"),
                                {"m": f'"{word}"'}).scalar() or 0
            if hits * 2 <= total:
                kept.append(word)
        return kept

    def _by_text(self, conn: Connection, store_ids: list[str], words: list[str], allowed: list[str] | None,
                 depth: int) -> list[tuple[int, float]]:
        c = self.index.table
        source: Any = c
        where = self._scope(store_ids, allowed)
        if self.index.postgres:
            tsquery = func.to_tsquery(PG_TEXT_CONFIG, literal(" | ".join(words)))
            rank = func.ts_rank_cd(c.c.tsv, tsquery)
            query = select(c.c.id, rank.label("r")).select_from(source) \
                .where(*where, c.c.tsv.op("@@")(tsquery)) \
                .order_by(literal_column("r").desc()).limit(depth)
        else:
            fts = table("vector_chunks_fts", literal_column("rowid"))
            match = " OR ".join(f'"{w}"' for w in words)
            rank = func.bm25(literal_column("vector_chunks_fts"))
            query = select(c.c.id, rank.label("r")).select_from(
                source.join(fts, literal_column("vector_chunks_fts.rowid") == c.c.id)) \
                .where(*where, literal_column("vector_chunks_fts").op("MATCH")(match)) \
                .order_by(literal_column("r")).limit(depth)
        return [(int(r.id), float(r.r)) for r in conn.execute(query)]

    def _results(self, conn: Connection, kept: list[tuple[int, float]]) -> list[SearchResult]:
        if not kept:
            return []
        c, f = self.index.table, vector_store_files
        query = select(c.c.id, c.c.text, c.c.file_id, c.c.vector_store_id, files.c.filename, f.c.attributes) \
            .select_from(c.join(f, and_(f.c.vector_store_id == c.c.vector_store_id, f.c.file_id == c.c.file_id))
                         .join(files, files.c.id == c.c.file_id)) \
            .where(c.c.id.in_([cid for cid, _ in kept]))
        rows = {r.id: r for r in conn.execute(query)}
        return [SearchResult(rows[cid].file_id, rows[cid].filename, round(score, 6), rows[cid].attributes,
                             [rows[cid].text], rows[cid].vector_store_id)
                for cid, score in kept if cid in rows]


def check_ranking_options(value: Any) -> tuple[str, float]:
    from rejoinder.vectors.params import check_object, number

    body = check_object(value, ("ranker", "score_threshold"), "ranking_options")
    ranker = body.get("ranker", "auto")
    if ranker not in ("none", "auto", "default-2024-11-15"):
        raise InvalidRequest(f"Invalid value: '{ranker}'. Supported values are: 'none', 'auto' and "
                             "'default-2024-11-15'.", param="ranking_options.ranker", code="invalid_value")
    threshold = number(body.get("score_threshold", 0.0), "ranking_options.score_threshold")
    if not 0.0 <= threshold <= 1.0:
        raise InvalidRequest("Invalid 'ranking_options.score_threshold': expected a value between 0 and 1.",
                             param="ranking_options.score_threshold", code="invalid_value")
    return ranker, threshold
