"""The Vector Stores API through the openai SDK, with the embedded MiniLM: ingestion of text,
Markdown, HTML, JSON, code and PDF, hybrid search, filters, ranking options, chunking, CRUD and
tenancy. Runs on SQLite, and on PostgreSQL with pgvector in the suite's PostgreSQL pass."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai.types import VectorStore, VectorStoreDeleted, VectorStoreSearchResponse
from openai.types.vector_stores import VectorStoreFile, VectorStoreFileBatch, VectorStoreFileDeleted

from tests.documents import make_pdf
from tests.procs import query
from tests.vector_fixtures import client

DOCS: dict[str, tuple[bytes, dict[str, Any]]] = {
    "cats.md": (b"# Cats\n\nCats are small domesticated felines. A kitten purrs, naps in the sun and chases mice.",
                {"topic": "pets", "year": 2021, "public": True}),
    "finance.html": (b"<html><head><script>var hidden = 'ignore me';</script></head><body><h1>Markets</h1>"
                     b"<p>Stock markets fell sharply after the central bank raised interest rates.</p></body></html>",
                     {"topic": "money", "year": 2024, "public": False}),
    "soup.json": (b'{"title": "Tomato soup", "steps": ["Roast tomatoes and garlic", "Blend with vegetable stock", '
                  b'"Season with basil and serve hot"]}', {"topic": "food", "year": 2023, "public": True}),
    "sky.pdf": (make_pdf(["The aurora borealis paints the polar night sky green,",
                          "caused by charged particles from the sun striking the upper atmosphere."]),
                {"topic": "science", "year": 2022, "public": True}),
    "errors.py": (b'def handle():\n    """Raise ZX-4471 when the flux capacitor overheats."""\n'
                  b'    raise RuntimeError("ZX-4471")\n', {"topic": "code", "year": 2024, "public": False}),
}


@pytest.fixture
def corpus(vs_server: Any) -> tuple[openai.OpenAI, str, dict[str, str]]:
    """Alice's store with the five documents, each with its attributes, ingested by one batch."""
    alice = client(vs_server)
    ids = {name: alice.files.create(file=(name, data), purpose="assistants").id for name, (data, _) in DOCS.items()}
    store = alice.vector_stores.create(name="corpus")
    batch = alice.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, files=[{"file_id": ids[n], "attributes": a} for n, (_, a) in DOCS.items()])
    VectorStoreFileBatch.model_validate(batch.model_dump())
    assert batch.status == "completed" and batch.file_counts.completed == 5, batch
    return alice, store.id, ids


def _names(results: Any) -> list[str]:
    return [r.filename for r in results.data]


def test_ingested_documents_are_found_by_meaning_and_by_words(corpus: Any) -> None:
    alice, store_id, ids = corpus
    store = alice.vector_stores.retrieve(store_id)
    VectorStore.model_validate(store.model_dump())
    assert store.status == "completed" and store.file_counts.completed == store.file_counts.total == 5
    assert store.usage_bytes > 0
    for question, expected in [("a kitten sleeping in the sunshine", "cats.md"),
                               ("northern lights", "sky.pdf"),
                               ("how do I cook a vegetable soup", "soup.json"),
                               ("central bank interest rates", "finance.html"),
                               ("what does ZX-4471 mean", "errors.py")]:
        found = alice.vector_stores.search(store_id, query=question)
        assert _names(found)[0] == expected, (question, [(r.filename, r.score) for r in found.data])
        for result in found.data:
            VectorStoreSearchResponse.model_validate(result.model_dump())
            assert result.file_id == ids[result.filename] and result.attributes == DOCS[result.filename][1]
        assert [r.score for r in found.data] == sorted((r.score for r in found.data), reverse=True)
    html = alice.vector_stores.files.content(ids["finance.html"], vector_store_id=store_id)
    text = " ".join(part.text or "" for part in html)
    assert "central bank" in text and "ignore me" not in text and "<p>" not in text
    pdf = " ".join(part.text or "" for part in alice.vector_stores.files.content(ids["sky.pdf"],
                                                                                 vector_store_id=store_id))
    assert "aurora borealis" in pdf


@pytest.mark.parametrize(("filters", "expected"), [
    ({"type": "eq", "key": "topic", "value": "pets"}, {"cats.md"}),
    ({"type": "ne", "key": "topic", "value": "pets"}, {"finance.html", "soup.json", "sky.pdf", "errors.py"}),
    ({"type": "gt", "key": "year", "value": 2022}, {"finance.html", "soup.json", "errors.py"}),
    ({"type": "gte", "key": "year", "value": 2023}, {"finance.html", "soup.json", "errors.py"}),
    ({"type": "lt", "key": "year", "value": 2022}, {"cats.md"}),
    ({"type": "lte", "key": "year", "value": 2022.0}, {"cats.md", "sky.pdf"}),
    ({"type": "in", "key": "topic", "value": ["pets", "food"]}, {"cats.md", "soup.json"}),
    ({"type": "nin", "key": "topic", "value": ["pets", "food"]}, {"finance.html", "sky.pdf", "errors.py"}),
    ({"type": "eq", "key": "public", "value": True}, {"cats.md", "soup.json", "sky.pdf"}),
    ({"type": "ne", "key": "public", "value": True}, {"finance.html", "errors.py"}),
    ({"type": "gt", "key": "year", "value": "2022"}, set()),  # a string never matches a number
    ({"type": "eq", "key": "colour", "value": "red"}, set()),  # nor does a key no file has
    ({"type": "lt", "key": "topic", "value": "money"}, {"soup.json", "errors.py"}),  # strings as strings
    ({"type": "and", "filters": [{"type": "eq", "key": "public", "value": True},
                                 {"type": "gte", "key": "year", "value": 2022}]}, {"soup.json", "sky.pdf"}),
    ({"type": "or", "filters": [{"type": "eq", "key": "topic", "value": "code"},
                                {"type": "and", "filters": [{"type": "lt", "key": "year", "value": 2022}]}]},
     {"errors.py", "cats.md"}),
])
def test_attribute_filters(corpus: Any, filters: dict[str, Any], expected: set[str]) -> None:
    alice, store_id, _ = corpus
    found = alice.vector_stores.search(store_id, query="anything at all", filters=filters,  # type: ignore[arg-type]
                                       max_num_results=50)
    assert set(_names(found)) == expected


@pytest.mark.parametrize("filters", [
    {"type": "eq", "key": "topic"},
    {"type": "like", "key": "topic", "value": "x"},
    {"type": "gt", "key": "public", "value": True},
    {"type": "in", "key": "topic", "value": "pets"},
    {"type": "and", "filters": []},
    {"type": "eq", "key": "topic", "value": "pets", "extra": 1},
    {"type": "eq", "key": "topic", "value": {"nested": 1}},
])
def test_bad_filters_are_400(corpus: Any, filters: dict[str, Any]) -> None:
    alice, store_id, _ = corpus
    with pytest.raises(openai.BadRequestError) as bad:
        alice.vector_stores.search(store_id, query="cats", filters=filters)  # type: ignore[arg-type]
    assert bad.value.body["param"].startswith("filters")


def test_ranking_options_limits_and_query_forms(corpus: Any) -> None:
    alice, store_id, _ = corpus
    plain = alice.vector_stores.search(store_id, query="a kitten sleeping in the sunshine",
                                       ranking_options={"ranker": "none"}, max_num_results=5)
    assert _names(plain)[0] == "cats.md" and len(plain.data) == 5
    scores = [r.score for r in plain.data]
    assert scores == sorted(scores, reverse=True) and 0 <= scores[-1] < scores[0] <= 1
    assert scores[0] > 0.3 > scores[-1]  # cosine similarity: related vs unrelated text
    strict = alice.vector_stores.search(store_id, query="a kitten sleeping in the sunshine",
                                        ranking_options={"ranker": "none", "score_threshold": 0.3})
    assert _names(strict) == ["cats.md"]
    assert len(alice.vector_stores.search(store_id, query="soup", max_num_results=2).data) == 2
    both = alice.vector_stores.search(store_id, query=["kitten", "ZX-4471"], max_num_results=2)
    assert set(_names(both)) == {"cats.md", "errors.py"}
    raw = httpx.post(f"{alice.base_url}vector_stores/{store_id}/search", headers={"Authorization": "Bearer key-alice"},
                     json={"query": "What is a kitten?", "rewrite_query": True}).json()
    assert raw["object"] == "vector_store.search_results.page" and raw["search_query"] == ["kitten"]
    assert raw["has_more"] is False and raw["data"][0]["filename"] == "cats.md"
    for bad, param in [({"query": "x", "max_num_results": 51}, "max_num_results"),
                       ({"query": "x", "ranking_options": {"ranker": "best"}}, "ranking_options.ranker"),
                       ({"query": "x", "ranking_options": {"score_threshold": 2}}, "ranking_options.score_threshold"),
                       ({"query": ""}, "query"), ({}, "query"), ({"query": "x", "top_k": 3}, "top_k"),
                       ({"query": "x", "rewrite_query": "yes"}, "rewrite_query")]:
        r = httpx.post(f"{alice.base_url}vector_stores/{store_id}/search", json=bad,
                       headers={"Authorization": "Bearer key-alice"})
        assert r.status_code == 400 and r.json()["error"]["param"] == param, (bad, r.text)


def test_chunking_strategies(vs_server: Any) -> None:
    alice = client(vs_server)
    words = " ".join(f"word{i}" for i in range(700))  # about 1,400 tokens
    made = alice.files.create(file=("long.txt", words.encode()), purpose="assistants")
    store = alice.vector_stores.create(name="chunks")
    static = alice.vector_stores.files.create_and_poll(
        file_id=made.id, vector_store_id=store.id,
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}})
    VectorStoreFile.model_validate(static.model_dump())
    assert static.status == "completed" and static.chunking_strategy is not None
    assert static.chunking_strategy.model_dump() == {
        "type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}
    chunks = [p.text or "" for p in alice.vector_stores.files.content(made.id, vector_store_id=store.id)]
    from rejoinder.vectors.chunking import count_tokens

    assert len(chunks) == -(-count_tokens(words) // 100) and all(count_tokens(c) <= 100 for c in chunks)
    assert "".join(chunks) == words  # no overlap: the chunks tile the text
    auto = alice.vector_stores.files.create_and_poll(file_id=made.id, vector_store_id=store.id)
    assert auto.chunking_strategy.model_dump()["static"] == {"max_chunk_size_tokens": 800,  # type: ignore[union-attr]
                                                             "chunk_overlap_tokens": 400}
    # re-ingested: windows of 800 tokens starting every 400, the last one ending with the text
    assert len(list(alice.vector_stores.files.content(made.id, vector_store_id=store.id))) == \
        1 + -(-max(0, count_tokens(words) - 800) // 400) >= 2
    for bad in ({"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 51}},
                {"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
                {"type": "static"}, {"type": "semantic"}):
        with pytest.raises(openai.BadRequestError) as err:
            alice.vector_stores.files.create(file_id=made.id, vector_store_id=store.id,
                                             chunking_strategy=bad)  # type: ignore[arg-type]
        assert err.value.body["param"].startswith("chunking_strategy")


def test_files_that_cannot_be_read_fail_with_openai_codes(vs_server: Any) -> None:
    alice = client(vs_server)
    store = alice.vector_stores.create(name="bad")
    cases = {"photo.png": (b"\x89PNG\r\n\x1a\n\x00\x00", "unsupported_file"),
             "blob.dat": (b"\x00\x01\x02\xff" * 100, "unsupported_file"),
             "broken.json": (b'{"a": ', "invalid_file"),
             "broken.pdf": (b"%PDF-1.4 this is not really a pdf", "invalid_file")}
    for name, (data, code) in cases.items():
        made = alice.files.create(file=(name, data), purpose="assistants")
        done = alice.vector_stores.files.create_and_poll(file_id=made.id, vector_store_id=store.id)
        assert done.status == "failed" and done.last_error is not None and done.last_error.code == code, name
    counts = alice.vector_stores.retrieve(store.id).file_counts
    assert (counts.failed, counts.completed, counts.total) == (4, 0, 4)
    assert [f.status for f in alice.vector_stores.files.list(vector_store_id=store.id, filter="failed")] == \
        ["failed"] * 4
    assert alice.vector_stores.files.list(vector_store_id=store.id, filter="completed").data == []


def test_store_life_cycle_and_pagination(vs_server: Any) -> None:
    alice = client(vs_server)
    made = [alice.vector_stores.create(name=f"s{i}", metadata={"n": str(i)},
                                       expires_after={"anchor": "last_active_at", "days": 7}) for i in range(4)]
    first = made[0]
    assert first.expires_after is not None and first.expires_after.days == 7
    assert first.expires_at == first.last_active_at + 7 * 86400  # type: ignore[operator]
    assert first.status == "completed" and first.file_counts.total == 0
    ids = [s.id for s in made]
    assert [s.id for s in alice.vector_stores.list(limit=2)] == ids[::-1]  # auto-paginated
    assert [s.id for s in alice.vector_stores.list(limit=2, order="asc").data] == ids[:2]
    assert [s.id for s in alice.vector_stores.list(after=ids[2], order="asc").data] == [ids[3]]
    assert [s.id for s in alice.vector_stores.list(before=ids[2], order="asc").data] == ids[:2]
    assert [s.id for s in alice.vector_stores.list(before=ids[1], order="desc").data] == ids[2:][::-1]
    changed = alice.vector_stores.update(first.id, name="renamed", metadata={"k": "v"}, expires_after=None)
    assert (changed.name, changed.metadata, changed.expires_after, changed.expires_at) == ("renamed", {"k": "v"},
                                                                                          None, None)
    with pytest.raises(openai.BadRequestError):
        alice.vector_stores.update(first.id, metadata={"k" * 65: "v"})
    with pytest.raises(openai.BadRequestError):
        alice.vector_stores.create(expires_after={"anchor": "created_at", "days": 1})  # type: ignore[typeddict-item]
    gone = alice.vector_stores.delete(first.id)
    assert VectorStoreDeleted.model_validate(gone.model_dump()).deleted
    with pytest.raises(openai.NotFoundError):
        alice.vector_stores.retrieve(first.id)


def test_files_in_a_store(vs_server: Any) -> None:
    alice = client(vs_server)
    cats, soup = (alice.files.create(file=(n, DOCS[n][0]), purpose="assistants") for n in ("cats.md", "soup.json"))
    one = alice.vector_stores.create(name="one", file_ids=[cats.id, soup.id])
    two = alice.vector_stores.create(name="two")
    attached = alice.vector_stores.files.create_and_poll(file_id=cats.id, vector_store_id=two.id,
                                                         attributes={"topic": "pets"})
    assert attached.attributes == {"topic": "pets"} and attached.vector_store_id == two.id
    alice.vector_stores.files.poll(soup.id, vector_store_id=one.id)
    updated = alice.vector_stores.files.update(cats.id, vector_store_id=two.id, attributes={"topic": "animals"})
    assert updated.attributes == {"topic": "animals"}
    hits = alice.vector_stores.search(two.id, query="cats", filters={"type": "eq", "key": "topic", "value": "animals"})
    assert _names(hits) == ["cats.md"]
    assert alice.vector_stores.files.retrieve(cats.id, vector_store_id=two.id).attributes == {"topic": "animals"}
    removed = alice.vector_stores.files.delete(cats.id, vector_store_id=one.id)
    assert VectorStoreFileDeleted.model_validate(removed.model_dump()).deleted
    assert _names(alice.vector_stores.search(one.id, query="kitten")) == ["soup.json"]
    assert alice.files.retrieve(cats.id).id == cats.id  # detaching leaves the file itself
    alice.files.delete(cats.id)  # deleting the file takes it out of every store
    assert alice.vector_stores.search(two.id, query="kitten").data == []
    assert alice.vector_stores.retrieve(two.id).file_counts.total == 0
    url = vs_server.server.config.app.state.settings.storage_url
    assert query(url, "SELECT COUNT(*) FROM vector_chunks WHERE file_id = :f", f=cats.id)[0][0] == 0
    alice.vector_stores.delete(one.id)
    assert query(url, "SELECT COUNT(*) FROM vector_chunks")[0][0] == 0
    with pytest.raises(openai.NotFoundError):
        alice.vector_stores.files.create(file_id="file-missing", vector_store_id=two.id)


def test_another_principal_gets_404_everywhere(corpus: Any, vs_server: Any) -> None:
    alice, store_id, ids = corpus
    bob = client(vs_server, "key-bob")
    batch = alice.vector_stores.file_batches.list_files  # a batch id to probe with
    batch_id = alice.vector_stores.file_batches.create_and_poll(vector_store_id=store_id,
                                                                file_ids=[ids["cats.md"]]).id
    file_id = ids["cats.md"]
    calls = [
        lambda: bob.vector_stores.retrieve(store_id),
        lambda: bob.vector_stores.update(store_id, name="mine now"),
        lambda: bob.vector_stores.delete(store_id),
        lambda: bob.vector_stores.search(store_id, query="cats"),
        lambda: bob.vector_stores.files.list(vector_store_id=store_id),
        lambda: bob.vector_stores.files.retrieve(file_id, vector_store_id=store_id),
        lambda: bob.vector_stores.files.content(file_id, vector_store_id=store_id),
        lambda: bob.vector_stores.files.update(file_id, vector_store_id=store_id, attributes={}),
        lambda: bob.vector_stores.files.delete(file_id, vector_store_id=store_id),
        lambda: bob.vector_stores.files.create(file_id=file_id, vector_store_id=store_id),
        lambda: bob.vector_stores.file_batches.create(vector_store_id=store_id, file_ids=[file_id]),
        lambda: bob.vector_stores.file_batches.retrieve(batch_id, vector_store_id=store_id),
        lambda: bob.vector_stores.file_batches.cancel(batch_id, vector_store_id=store_id),
        lambda: bob.vector_stores.file_batches.list_files(batch_id, vector_store_id=store_id),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError):
            call()
    own = bob.vector_stores.create(name="bob's")
    with pytest.raises(openai.NotFoundError):  # alice's file cannot go into bob's store
        bob.vector_stores.files.create(file_id=file_id, vector_store_id=own.id)
    assert [s.id for s in bob.vector_stores.list()] == [own.id]
    assert alice.vector_stores.retrieve(store_id).name == "corpus" and batch is not None
    assert _names(alice.vector_stores.search(store_id, query="kitten"))[0] == "cats.md"


def test_filtered_and_unfiltered_vector_rankings_agree(corpus: Any) -> None:
    """Unfiltered, SQLite ranks with sqlite-vec's vec0 scan; filtered, with the files' vectors one
    by one: the two must give the same order and scores."""
    alice, store_id, _ = corpus
    query = "animals and the night sky"
    full = alice.vector_stores.search(store_id, query=query, ranking_options={"ranker": "none"}, max_num_results=50)
    part = alice.vector_stores.search(store_id, query=query, ranking_options={"ranker": "none"}, max_num_results=50,
                                      filters={"type": "ne", "key": "topic", "value": "pets"})
    assert len(full.data) == 5 and len(part.data) == 4
    assert [(r.filename, round(r.score, 4)) for r in full.data if r.filename != "cats.md"] == \
        [(r.filename, round(r.score, 4)) for r in part.data]
