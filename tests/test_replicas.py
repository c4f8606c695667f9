"""Two real ``rejoinder serve`` processes on one database serve any request for any response.

Runs on the suite's storage: SQLite in the first pass, a fresh PostgreSQL database in the second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import MODEL
from tests.fake_upstream import text
from tests.procs import ServeProcess, query, start_together, wait_status


@pytest.fixture
def replicas(tmp_path, upstream, shared_storage_url) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    a = ServeProcess(tmp_path, shared_storage_url, upstream.url, "a", replica_id="replica-a",
                     background_workers=1)
    b = ServeProcess(tmp_path, shared_storage_url, upstream.url, "b", replica_id="replica-b",
                     background_workers=1)
    try:
        start_together(a, b)
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_chain_alternates_across_replicas(replicas, upstream):
    a, b = replicas
    upstream.queue(text("red"), text("green"), text("blue"))
    r1 = a.client().responses.create(model=MODEL, input="first colour?")
    r2 = b.client().responses.create(model=MODEL, input="second?", previous_response_id=r1.id)
    r3 = a.client().responses.create(model=MODEL, input="third?", previous_response_id=r2.id)
    assert r3.output_text == "blue"
    sent = [(m["role"], m["content"]) for m in upstream.requests[-1]["messages"]]
    assert ("assistant", "red") in sent and ("assistant", "green") in sent
    assert [c for r, c in sent if r == "user"] == ["first colour?", "second?", "third?"]
    assert b.client().responses.retrieve(r3.id).output_text == "blue"
    items = a.client().responses.input_items.list(r2.id)
    assert [i.content[0].text for i in items.data] == ["second?"]


def test_conversation_alternates_across_replicas(replicas, upstream):
    a, b = replicas
    conv = httpx.post(a.url + "/v1/conversations", json={}).json()
    upstream.queue(text("one"), text("two"))
    a.client().responses.create(model=MODEL, input="turn one", conversation=conv["id"])
    b.client().responses.create(model=MODEL, input="turn two", conversation=conv["id"])
    listed = httpx.get(a.url + f"/v1/conversations/{conv['id']}/items", params={"order": "asc"}).json()
    texts = [item["content"][0]["text"] for item in listed["data"]]
    assert texts == ["turn one", "one", "turn two", "two"]


def test_background_job_runs_on_the_replica_with_room(replicas, upstream, shared_storage_url):
    a, b = replicas
    # the second job runs ~1 s, so polling the database sees which replica holds its lease
    upstream.queue(text(" ".join(["slow"] * 200), delay=0.05), text("picked up elsewhere", delay=0.15))
    busy = a.client().responses.create(model=MODEL, input="occupy a", background=True)
    wait_status(a.client(), busy.id, ("in_progress",))
    other = a.client().responses.create(model=MODEL, input="go to b", background=True)
    owners = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = query(shared_storage_url, "SELECT status, lease_owner FROM responses WHERE id = :id",
                     id=other.id)
        status, owner = rows[0]
        if owner:
            owners.add(owner.split("/")[0])
        if status == "completed":
            break
        time.sleep(0.05)
    assert owners == {"replica-b"}
    assert b.client().responses.retrieve(other.id).output_text == "picked up elsewhere"
    # cancel from the replica that is not running it
    assert b.client().responses.cancel(busy.id).status == "cancelled"
    final = wait_status(a.client(), busy.id, ("cancelled",))
    assert final.status == "cancelled"
    rows = query(shared_storage_url, "SELECT lease_owner FROM responses WHERE id = :id", id=busy.id)
    deadline = time.monotonic() + 30
    while rows[0][0] is not None and time.monotonic() < deadline:  # the worker let go of it
        time.sleep(0.1)
        rows = query(shared_storage_url, "SELECT lease_owner FROM responses WHERE id = :id", id=busy.id)
    assert rows[0][0] is None


def test_stream_resumes_on_the_other_replica(replicas, upstream):
    a, b = replicas
    upstream.queue(text("a stream that moves from one replica to the other", delay=0.05))
    stream = a.client().responses.create(model=MODEL, input="hi", background=True, stream=True)
    first = []
    for event in stream:
        first.append(event)
        if len(first) == 5:
            break
    stream.close()
    response_id = first[0].response.id
    after = first[-1].sequence_number
    rest = list(b.client().responses.retrieve(response_id, stream=True, starting_after=after))
    numbers = [e.sequence_number for e in first + rest]
    assert numbers == list(range(len(numbers)))
    assert rest[-1].type == "response.completed"
    assert rest[-1].response.output_text == "a stream that moves from one replica to the other"
