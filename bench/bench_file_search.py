"""The file_search tool path at 10,000 chunks, on SQLite and on PostgreSQL with pgvector.

Starts a real ``rejoinder serve`` process and a scripted model (tests/fake_upstream.py) that calls
``file_search`` with the user's question, then answers citing ``[1]``. It ingests ``--chunks``
chunks (bench_vectors.py's corpus), then times ``--queries`` responses, streamed:

- the tool path: from ``response.file_search_call.searching`` to ``.completed`` as the client
  receives them (query embedding, the search in the database, the results shaped for the model);
- the whole turn (two model steps, the search, the citation) as the client sees it.

``--embeddings minilm`` embeds with the embedded MiniLM (12 chunks/s on two busy cores: a 10,000
chunk ingest takes ~15 minutes per database); ``fake`` (the default) with the fake upstream's
hashed 384-dimension vectors, so the ingest takes a minute and the search does the same work.

    python bench/bench_file_search.py [--storage sqlite|postgres|both] [--chunks 10000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_vectors import ADJECTIVES, NOUNS, ingest
from bench.common import pct, rejoinder, scripted_upstream
from tests import pgvector
from tests.procs import query


@contextmanager
def searching_model() -> Iterator[str]:
    """A fake upstream whose model calls file_search with the question, then cites [1]."""
    with scripted_upstream(
        "from tests.fake_upstream import calls, text\n"
        "def answer(body):\n"
        "    f.requests.clear()\n"
        "    last = body['messages'][-1]\n"
        "    if last['role'] == 'tool':\n"
        "        return text('The answer is there [1].')\n"
        "    return calls(('file_search', {'query': last['content']}))\n"
        "f.responder = answer\n"
    ) as url:
        yield url


def turns(url: str, store_id: str, questions: list[str]) -> tuple[list[float], list[float]]:
    tool, whole = [], []
    headers = {"Authorization": "Bearer bench"}
    body = {"model": "fake", "stream": True,
            "tools": [{"type": "file_search", "vector_store_ids": [store_id], "max_num_results": 10}]}
    with httpx.Client(base_url=url + "/v1", headers=headers, timeout=60) as http:
        for i, q in enumerate(["warm up", *questions]):
            start = time.perf_counter()
            seen: dict[str, float] = {}
            annotated = False
            with http.stream("POST", "/responses", json={**body, "input": q}) as r:
                for line in r.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line[6:])
                    seen.setdefault(event["type"], time.perf_counter())
                    annotated = annotated or event["type"] == "response.output_text.annotation.added"
            assert "response.completed" in seen and annotated, sorted(seen)
            if i:
                tool.append((seen["response.file_search_call.completed"]
                             - seen["response.file_search_call.searching"]) * 1000)
                whole.append((seen["response.completed"] - start) * 1000)
    return tool, whole


def run(storage: str, args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp())
    storage_url = pgvector.create_database() if storage == "postgres" else f"sqlite:///{tmp / 'bench.db'}"
    rng = random.Random(7)
    questions = [" ".join(rng.choice(NOUNS + ADJECTIVES) for _ in range(rng.randint(2, 5)))
                 for _ in range(args.queries)]
    extra = {"storage_url": storage_url, "api_keys": {"bench": "bench"},
             "data_dir": str(Path(os.path.expanduser("~/.cache/rejoinder/bench-models")))}
    if args.embeddings == "fake":
        extra["embeddings"] = {"model": "fake", "dimensions": 384, "batch_size": 256}
    with searching_model() as upstream, rejoinder(upstream, extra=extra) as (url, _pid):
        print(f"== {storage}, {args.embeddings} embeddings ==", flush=True)
        store_id, elapsed = ingest(url, args.chunks, rng)
        stored = query(storage_url, "SELECT COUNT(*) FROM vector_chunks")[0][0]
        print(f"ingest: {stored} chunks in {elapsed:.0f} s", flush=True)
        tool, whole = turns(url, store_id, questions)
        print(f"file_search tool path (searching -> completed, query embedding included): "
              f"p50 {statistics.median(tool):.1f} ms  p99 {pct(tool, 0.99):.1f} ms", flush=True)
        print(f"whole turn (model calls file_search, search, model answers citing [1]): "
              f"p50 {statistics.median(whole):.1f} ms  p99 {pct(whole, 0.99):.1f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embeddings", choices=["fake", "minilm"], default="fake")
    args = parser.parse_args()
    for storage in (["sqlite", "postgres"] if args.storage == "both" else [args.storage]):
        run(storage, args)


if __name__ == "__main__":
    main()
