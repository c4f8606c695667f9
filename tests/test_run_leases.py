"""Leases per run: a run whose task dies while its replica lives is settled within the lease time.

Each test kills the task running a response (``Task.cancel`` on the server's loop: the process
lives on) while the store refuses that run's own final write, so the run cannot settle itself on
the way out. Its lease must: the response ends ``failed`` with the output its run had produced, and
what it held (its conversation) is free again, well before any lock expiry.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from rejoinder.store.conversations import ConversationStore
from rejoinder.store.responses import ResponseStore
from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, ThreadServer, text
from tests.helpers import create_once_unlocked

LEASE_SECONDS = 3.0
WORDS = " ".join(f"w{i}" for i in range(400))  # 20 s at 0.05 s a chunk: still running when killed


def _client(server: ThreadServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=30)


def _kill(server: ThreadServer, response_id: str) -> None:
    """Cancel the task running the response, on the server's event loop."""
    lease = server.server.config.app.state.services.leases.live[response_id]
    task = lease.task
    task.get_loop().call_soon_threadsafe(task.cancel)


def _refuse_final_write(monkeypatch: pytest.MonkeyPatch, victim: dict[str, str]) -> None:
    """The store fails the victim run's final write (a database gone away, say)."""
    finish = ResponseStore.finish

    async def refusing(self: ResponseStore, body: dict[str, Any], **kwargs: Any) -> bool:
        if body["id"] == victim.get("id"):
            raise RuntimeError("the database went away")
        return await finish(self, body, **kwargs)

    monkeypatch.setattr(ResponseStore, "finish", refusing)


def _settled(client: openai.OpenAI, response_id: str) -> Any:
    # Settled within the lease time; twice that before failing, for a loaded machine's late sweeps.
    deadline = time.monotonic() + 2 * LEASE_SECONDS
    while (found := client.responses.retrieve(response_id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline, f"{response_id} is still {found.status} after the lease time"
        time.sleep(0.05)
    return found


def test_a_streamed_run_whose_task_dies_is_failed_with_what_the_client_saw(
    make_server: Any, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server(lease_seconds=LEASE_SECONDS)
    client = _client(server)
    conv = client.conversations.create()
    victim: dict[str, str] = {}
    _refuse_final_write(monkeypatch, victim)
    upstream.queue(text(WORDS, delay=0.05), text("the next turn"))
    seen = ""
    stream = client.responses.create(model=MODEL, input="hi", conversation=conv.id, stream=True)
    for event in stream:
        if event.type == "response.created":
            victim["id"] = event.response.id
        if event.type == "response.output_text.delta":
            seen += event.delta
            if seen.count(" ") == 5:
                _kill(server, victim["id"])
    assert seen.count(" ") >= 5
    failed = _settled(client, victim["id"])
    assert failed.status == "failed"
    assert failed.error is not None and failed.error.code == "server_error"
    assert failed.output_text.startswith(seen)  # nothing the client saw is lost
    assert client.responses.create(model=MODEL, input="again", conversation=conv.id).output_text == "the next turn"


def test_a_store_false_turn_whose_task_dies_releases_its_conversation(
    make_server: Any, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """store=false stores nothing, but its conversation lock is leased like a stored turn's: freed
    when its task dies, not after the lock's 600 s expiry."""
    server = make_server(lease_seconds=LEASE_SECONDS)
    client = _client(server)
    conv = client.conversations.create()
    victim: dict[str, str] = {}
    unlock = ConversationStore.unlock
    refused: list[str] = []

    async def refusing_once(self: ConversationStore, conversation_id: str, holder: str) -> None:
        if holder == victim.get("id") and not refused:
            refused.append(holder)
            raise RuntimeError("the database went away")
        await unlock(self, conversation_id, holder)

    monkeypatch.setattr(ConversationStore, "unlock", refusing_once)
    upstream.queue(text(WORDS, delay=0.05), text("the next turn"))
    stream = client.responses.create(model=MODEL, input="hi", conversation=conv.id, store=False, stream=True)
    for event in stream:
        if event.type == "response.created":
            victim["id"] = event.response.id
        if event.type == "response.output_text.delta" and not refused:  # the model is answering
            _kill(server, victim["id"])
            break
    for _ in stream:
        pass  # to its end: the run is gone
    assert refused == [victim["id"]]  # the run's own release failed: only its lease can free it
    after = create_once_unlocked(client, conv.id, LEASE_SECONDS, model=MODEL, input="again")
    assert after.output_text == "the next turn"


def test_a_background_run_whose_task_dies_is_failed_and_its_followers_told(
    make_server: Any, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server(lease_seconds=LEASE_SECONDS)
    client = _client(server)
    victim: dict[str, str] = {}
    _refuse_final_write(monkeypatch, victim)
    upstream.queue(text(WORDS, delay=0.05))
    job = client.responses.create(model=MODEL, input="long job", background=True)
    victim["id"] = job.id
    seen = ""
    with httpx.stream("GET", f"{server.url}/v1/responses/{job.id}", params={"stream": "true"}, timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and '"response.output_text.delta"' in line:
                seen += openai.types.responses.ResponseTextDeltaEvent.model_validate_json(line[6:]).delta
                if seen.count(" ") == 5:
                    _kill(server, job.id)
                    break
    failed = _settled(client, job.id)
    assert failed.status == "failed"
    assert failed.output_text.startswith(seen)
    events = list(client.responses.retrieve(job.id, stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.output_text == failed.output_text
