"""A server killed with SIGKILL mid-response leaves nothing ``in_progress`` forever."""

from __future__ import annotations

import httpx

from tests.conftest import MODEL
from tests.fake_upstream import text
from tests.helpers import create_once_unlocked
from tests.procs import ServeProcess, query, start_together, wait_status
from tests.test_metrics import scrape, value

STUCK = "SELECT id FROM responses WHERE status IN ('queued', 'in_progress')"


def test_foreground_response_of_killed_replica_fails_on_restart(tmp_path, upstream, shared_storage_url):
    a = ServeProcess(tmp_path, shared_storage_url, upstream.url, "a", replica_id="crash-a")
    b = ServeProcess(tmp_path, shared_storage_url, upstream.url, "b", replica_id="crash-b")
    try:
        start_together(a, b)
        conv = httpx.post(a.url + "/v1/conversations", json={}).json()["id"]
        upstream.queue(text(" ".join(["never"] * 400), delay=0.05), text("after the crash"))
        stream = a.client().responses.create(model=MODEL, input="hi", conversation=conv, stream=True)
        response_id = None
        for event in stream:
            if event.type == "response.created":
                response_id = event.response.id
            if event.type == "response.output_text.delta":
                break
        assert response_id is not None
        a.kill()
        assert b.client().responses.retrieve(response_id).status == "in_progress"  # nobody knows yet
        a.start()  # same replica id: its previous process's responses are settled at start-up
        failed = b.client().responses.retrieve(response_id)
        assert failed.status == "failed"
        assert failed.error is not None and failed.error.code == "server_error"
        # the conversation is usable again (its lock went with the failed response)
        after = b.client().responses.create(model=MODEL, input="again", conversation=conv)
        assert after.output_text == "after the crash"
        stuck = query(shared_storage_url, STUCK)
        assert stuck == []
    finally:
        a.stop()
        b.stop()


def test_background_response_of_killed_replica_fails_when_its_lease_expires(tmp_path, upstream,
                                                                           shared_storage_url):
    a = ServeProcess(tmp_path, shared_storage_url, upstream.url, "a", lease_seconds=1.5)
    b = ServeProcess(tmp_path, shared_storage_url, upstream.url, "b", lease_seconds=1.5)
    try:
        start_together(a, b)
        # The foreground answer is slow too: it must still be running when its replica dies.
        upstream.queue(text(" ".join(["never"] * 400), delay=0.05), text("foreground too", delay=0.5))
        bg = a.client().responses.create(model=MODEL, input="long job", background=True)
        wait_status(a.client(), bg.id, ("in_progress",))
        fg_stream = a.client().responses.create(model=MODEL, input="hi", stream=True)
        fg_id = next(iter(fg_stream)).response.id
        a.kill()  # no restart: a different replica must notice the lapsed leases
        failed = wait_status(b.client(), bg.id, ("failed", "completed", "cancelled"))
        assert failed.status == "failed"
        assert wait_status(b.client(), fg_id, ("failed", "completed")).status == "failed"
        # b settled both of a's responses: its metrics count the takeovers
        assert value(scrape(b.url), "rejoinder_lease_takeovers_total") == 2
        # a follower of the dead run gets a terminal event instead of hanging
        events = list(b.client().responses.retrieve(bg.id, stream=True, starting_after=2))
        assert events[-1].type == "response.failed"
        stuck = query(shared_storage_url, STUCK)
        assert stuck == []
    finally:
        a.stop()
        b.stop()


def test_a_killed_replicas_stream_keeps_the_output_its_lease_renewals_stored(tmp_path, upstream,
                                                                            shared_storage_url):
    """Each renewal of a run's lease stores its partial output: the replica that settles a dead
    one's response fails it with that output, not an empty one."""
    a = ServeProcess(tmp_path, shared_storage_url, upstream.url, "a", lease_seconds=1.5)
    b = ServeProcess(tmp_path, shared_storage_url, upstream.url, "b", lease_seconds=1.5)
    try:
        start_together(a, b)
        upstream.queue(text(" ".join(f"w{i}" for i in range(400)), delay=0.05))
        stream = a.client().responses.create(model=MODEL, input="hi", stream=True)
        response_id, seen = None, ""
        for event in stream:
            if event.type == "response.created":
                response_id = event.response.id
            if event.type == "response.output_text.delta":
                seen += event.delta
                drafts = query(shared_storage_url, "SELECT count(*) FROM response_items "
                               "WHERE response_id = :id AND kind = 'draft'", id=response_id)
                if drafts[0][0]:
                    break
        a.kill()
        failed = wait_status(b.client(), response_id, ("failed", "completed"))
        assert failed.status == "failed"
        kept = failed.output_text
        assert kept and (seen.startswith(kept) or kept.startswith(seen))
        assert query(shared_storage_url, STUCK) == []
    finally:
        a.stop()
        b.stop()


def test_a_killed_replicas_store_false_turn_frees_its_conversation_with_its_lease(tmp_path, upstream,
                                                                                shared_storage_url):
    """store=false writes no response, but its conversation lock is leased: once the replica that
    held it dies, the conversation is free after the lease, not after the lock's 600 s."""
    a = ServeProcess(tmp_path, shared_storage_url, upstream.url, "a", lease_seconds=1.5)
    b = ServeProcess(tmp_path, shared_storage_url, upstream.url, "b", lease_seconds=1.5)
    try:
        start_together(a, b)
        conv = httpx.post(a.url + "/v1/conversations", json={}).json()["id"]
        upstream.queue(text(" ".join(["never"] * 400), delay=0.05), text("after the crash"))
        stream = a.client().responses.create(model=MODEL, input="hi", conversation=conv, store=False, stream=True)
        for event in stream:
            if event.type == "response.output_text.delta":
                break
        a.kill()
        after = create_once_unlocked(b.client(), conv, 30, model=MODEL, input="again")
        assert after.output_text == "after the crash"
    finally:
        a.stop()
        b.stop()
