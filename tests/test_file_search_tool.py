"""The file_search tool end to end: a scripted model searches a vector store the test filled (a PDF
among the documents), cites with markers, and gets file_citation annotations; events checked
against the SDK's types; include, filters, ranking options, max_num_results; tenancy.
Runs on SQLite, and on PostgreSQL with pgvector in the suite's PostgreSQL pass."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.conftest import MODEL
from tests.documents import make_pdf
from tests.fake_upstream import Turn, calls, text
from tests.vector_fixtures import client, wait_for

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
DOCS = {
    "kettle.pdf": (make_pdf(["Every Acme kettle has a warranty of three years from the date of purchase."]),
                   {"product": "kettle", "year": 2024}),
    "toaster.md": (b"# Toaster\n\nThe Acme toaster has a warranty of one year and browns bread evenly.",
                   {"product": "toaster", "year": 2023}),
}


@pytest.fixture
def store(vs_server: Any) -> tuple[openai.OpenAI, str, dict[str, str]]:
    alice = client(vs_server)
    ids = {n: alice.files.create(file=(n, d), purpose="assistants").id for n, (d, _) in DOCS.items()}
    vs = alice.vector_stores.create(name="manuals")
    batch = alice.vector_stores.file_batches.create_and_poll(
        vector_store_id=vs.id, files=[{"file_id": ids[n], "attributes": a} for n, (_, a) in DOCS.items()])
    assert batch.status == "completed" and batch.file_counts.completed == 2, batch
    return alice, vs.id, ids


def _tool(store_id: str, **kw: Any) -> dict[str, Any]:
    return {"type": "file_search", "vector_store_ids": [store_id], **kw}


def _tool_message(request: dict[str, Any]) -> str:
    return next(m["content"] for m in request["messages"] if m["role"] == "tool")


def test_search_results_reach_the_model_and_its_markers_become_file_citations(store: Any, upstream: Any) -> None:
    alice, store_id, ids = store
    upstream.queue(calls(("file_search", {"query": "kettle warranty"})),
                   text("The kettle's warranty lasts three years [1]."))
    with alice.responses.stream(model=MODEL, input="How long is the kettle warranty?",
                                tools=[_tool(store_id)], include=["file_search_call.results"]) as stream:
        events = [EVENTS.validate_python(e.model_dump()) for e in stream]
    response = events[-1].response
    Response.model_validate(response.model_dump())
    kinds = [e.type for e in events]
    at = kinds.index("response.file_search_call.in_progress")
    assert kinds[at:at + 2] == ["response.file_search_call.in_progress", "response.file_search_call.searching"]
    assert "response.file_search_call.completed" in kinds and "response.output_text.annotation.added" in kinds
    call, message = response.output
    assert call.type == "file_search_call" and call.status == "completed" and call.queries == ["kettle warranty"]
    assert call.results[0].filename == "kettle.pdf" and "three years" in call.results[0].text
    part = message.content[0]
    assert part.text == "The kettle's warranty lasts three years."
    (note,) = part.annotations
    assert (note.type, note.file_id, note.filename) == ("file_citation", ids["kettle.pdf"], "kettle.pdf")
    assert part.text[:note.index] == "The kettle's warranty lasts three years"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == part.text  # the markers never reached the client
    shown = _tool_message(upstream.requests[-1])
    assert "[1] kettle.pdf: Every Acme kettle has a warranty of three years" in shown
    stored = alice.responses.retrieve(response.id)
    assert stored.output[0].results is None  # GET without the include hides them
    again = httpx.get(f"{alice.base_url}responses/{response.id}", params={"include[]": "file_search_call.results"},
                      headers={"Authorization": "Bearer key-alice"}).json()
    assert again["output"][0]["results"][0]["file_id"] == ids["kettle.pdf"]


def test_results_are_hidden_without_include_and_markers_keep_their_numbers_next_turn(store: Any,
                                                                                    upstream: Any) -> None:
    alice, store_id, _ = store
    upstream.queue(calls(("file_search", {"query": "kettle warranty"})), text("Three years [1]."))
    first = alice.responses.create(model=MODEL, input="Kettle warranty?", tools=[_tool(store_id, max_num_results=1)])
    assert first.output[0].results is None and first.output[1].content[0].annotations[0].file_id
    upstream.queue(calls(("file_search", {"query": "toaster"})), text("The toaster: one year [2]; kettle [1]."))
    second = alice.responses.create(model=MODEL, input="And the toaster?", tools=[_tool(store_id, max_num_results=1)],
                                    previous_response_id=first.id)
    part = second.output[1].content[0]
    assert part.text == "The toaster: one year; kettle."
    assert [(a.filename, a.index) for a in part.annotations] == [("toaster.md", 21), ("kettle.pdf", 29)]
    replayed = upstream.requests[-1]["messages"]
    tools = [m["content"] for m in replayed if m["role"] == "tool"]
    assert 'Results for "kettle warranty"' in tools[0] and tools[0].startswith("[1] kettle.pdf")
    assert "[2] toaster.md" in tools[1]


def test_filters_max_num_results_and_ranking_options_are_honoured(store: Any, upstream: Any) -> None:
    alice, store_id, _ = store
    upstream.queue(calls(("file_search", {"query": "warranty"})), text("ok"))
    r = alice.responses.create(model=MODEL, input="warranty?", include=["file_search_call.results"], tools=[
        _tool(store_id, filters={"type": "eq", "key": "product", "value": "toaster"}, max_num_results=1,
              ranking_options={"ranker": "auto", "score_threshold": 0.0,
                               "hybrid_search": {"embedding_weight": 1, "text_weight": 0.5}})])
    assert [x.filename for x in r.output[0].results] == ["toaster.md"]
    upstream.queue(calls(("file_search", {"query": "warranty"})), text("ok"))
    r = alice.responses.create(model=MODEL, input="warranty?", include=["file_search_call.results"],
                               tools=[_tool(store_id, max_num_results=1)])
    assert len(r.output[0].results) == 1
    upstream.queue(calls(("file_search", {"query": "warranty"})), text("nothing"))
    r = alice.responses.create(model=MODEL, input="warranty?", include=["file_search_call.results"],
                               tools=[_tool(store_id, filters={"type": "eq", "key": "product", "value": "blender"})])
    assert r.output[0].results == [] and "No passage" in _tool_message(upstream.requests[-1])


def test_another_principals_vector_store_is_a_404_as_in_the_api(store: Any, vs_server: Any, upstream: Any) -> None:
    _, store_id, _ = store
    bob = client(vs_server, "key-bob")
    with pytest.raises(openai.NotFoundError) as api:
        bob.vector_stores.search(vector_store_id=store_id, query="warranty")
    with pytest.raises(openai.NotFoundError) as tool:
        bob.responses.create(model=MODEL, input="warranty?", tools=[_tool(store_id)])
    assert tool.value.body == api.value.body
    assert upstream.requests == []  # refused before the model was asked


def test_a_store_deleted_before_the_call_fails_the_call_and_the_response_completes(store: Any,
                                                                                   upstream: Any) -> None:
    alice, store_id, _ = store
    gate = threading.Event()
    upstream.queue(Turn(tool_calls=[("file_search", {"query": "warranty"})], gate=gate), text("It failed."))
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(alice.responses.create, model=MODEL, input="warranty?", tools=[_tool(store_id)])
        wait_for(lambda: upstream.requests, what="the model's first step")
        alice.vector_stores.delete(store_id)  # after the request was prepared, before the call runs
        gate.set()
        r = pending.result(timeout=60)
    assert r.status == "completed" and r.output[0].status == "failed"
    assert "failed" in _tool_message(upstream.requests[-1])


def test_bad_declarations_are_400s_naming_the_field(store: Any) -> None:
    alice, store_id, _ = store
    for tool, param in [(_tool(store_id, max_num_results=0), "tools[0].max_num_results"),
                        (_tool(store_id, ranking_options={"score_threshold": 2}),
                         "tools[0].ranking_options.score_threshold"),
                        (_tool(store_id, filters={"type": "eq", "key": "a", "value": [[1]]}), "tools[0].filters"),
                        ({"type": "file_search", "vector_store_ids": []}, "tools[0].vector_store_ids")]:
        with pytest.raises(openai.BadRequestError) as err:
            alice.responses.create(model=MODEL, input="x", tools=[tool])
        assert err.value.body["param"].startswith(param), (tool, err.value.body)


def test_tool_choice_file_search_forces_the_search(store: Any, upstream: Any) -> None:
    alice, store_id, _ = store
    upstream.queue(calls(("file_search", {"query": "warranty"})), text("ok"))
    alice.responses.create(model=MODEL, input="warranty?", tools=[_tool(store_id)],
                           tool_choice={"type": "file_search"})
    assert upstream.requests[0]["tool_choice"] == {"type": "function", "function": {"name": "file_search"}}
    assert json.dumps(upstream.requests[0]["tools"][0]["function"]["name"]) == '"file_search"'


def test_the_readme_flow_gives_a_cited_answer_with_the_embedded_defaults(make_vs_server: Any) -> None:
    """README "From upload to a cited answer": the embedded SmolLM2 and MiniLM, nothing configured."""
    alice = client(make_vs_server(embedded={"enabled": "on"}))
    manual = alice.files.create(file=("kettle-manual.md", b"# Acme kettle\n\nEvery Acme kettle has a warranty of "
                                      b"three years from the date of purchase.\n\nDescale the kettle once a month."),
                                purpose="assistants")
    store = alice.vector_stores.create(name="manuals", file_ids=[manual.id])
    wait_for(lambda: alice.vector_stores.retrieve(store.id).file_counts.completed == 1, what="ingestion")
    response = alice.responses.create(
        model="smollm2-135m-instruct", input="How many years of warranty does the Acme kettle have?",
        tools=[{"type": "file_search", "vector_store_ids": [store.id], "max_num_results": 2}],
        tool_choice="required", temperature=0)
    assert response.status == "completed"
    call, message = response.output
    assert call.type == "file_search_call" and call.status == "completed"
    part = message.content[0]
    assert "[" not in part.text and "three years" in part.text
    (note,) = part.annotations
    assert (note.type, note.file_id, note.filename) == ("file_citation", manual.id, "kettle-manual.md")
    assert 0 < note.index <= len(part.text)


def test_another_principals_store_is_a_404_over_websocket_and_in_background(store: Any, vs_server: Any,
                                                                          upstream: Any) -> None:
    from tests.test_websocket import open_socket, recv, send

    _, store_id, _ = store
    with open_socket(vs_server, {"Authorization": "Bearer key-bob"}) as ws:
        send(ws, type="response.create", model=MODEL, input="warranty?", tools=[_tool(store_id)])
        error = recv(ws)
        assert error["type"] == "error" and error["status"] == 404, error
        assert store_id in error["error"]["message"]
    bob = client(vs_server, "key-bob")
    with pytest.raises(openai.NotFoundError):
        bob.responses.create(model=MODEL, input="warranty?", tools=[_tool(store_id)], background=True)
    assert upstream.requests == []


def test_two_replicas_share_stores_and_keep_tenants_apart(make_vs_server: Any, tmp_path: Any, upstream: Any) -> None:
    from tests.vector_fixtures import vector_storage_url

    shared = vector_storage_url(tmp_path / "shared")
    first, second = make_vs_server(storage_url=shared), make_vs_server(storage_url=shared)
    alice = client(first)
    manual = alice.files.create(file=("kettle.md", b"The Acme kettle has a warranty of three years."),
                                purpose="assistants")
    store = alice.vector_stores.create(name="manuals", file_ids=[manual.id])
    wait_for(lambda: alice.vector_stores.retrieve(store.id).file_counts.completed == 1, what="ingestion")
    upstream.queue(calls(("file_search", {"query": "kettle warranty"})), text("Three years [1]."))
    r = client(second).responses.create(model=MODEL, input="warranty?", tools=[_tool(store.id)])
    assert r.output[1].content[0].annotations[0].file_id == manual.id
    with pytest.raises(openai.NotFoundError):
        client(second, "key-bob").responses.create(model=MODEL, input="warranty?", tools=[_tool(store.id)])
