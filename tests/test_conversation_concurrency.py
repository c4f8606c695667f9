"""64 turns racing on one conversation: each is refused (HTTP 400 ``conversation_locked``, adding
nothing) or lands whole, its items contiguous and in order; none is lost, none reads a stale context."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from typing import Any

import openai
import pytest

from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, Turn, text

TURNS = 64


def _answer(body: dict[str, Any]) -> Turn:
    """Two output items per turn (reasoning, then a message), streamed slowly enough to overlap."""
    last = body["messages"][-1]["content"]
    k = re.fullmatch(r"turn (\d+)", last)
    assert k is not None, last
    return Turn(reasoning=f"thinking about {k[1]}", text=f"answer {k[1]} done", delay=0.002)


async def _turn(client: openai.AsyncOpenAI, conv_id: str, k: int, retry: bool) -> Any:
    while True:
        try:
            if k % 2:
                stream = await client.responses.create(model=MODEL, input=f"turn {k}", conversation=conv_id,
                                                       stream=True)
                final = None
                async for event in stream:
                    if event.type == "response.completed":
                        final = event.response
                return final
            return await client.responses.create(model=MODEL, input=f"turn {k}", conversation=conv_id)
        except openai.BadRequestError as exc:
            err = exc.body if isinstance(exc.body, dict) else {}
            assert (err.get("code"), err.get("param"), err.get("type")) == (
                "conversation_locked", "conversation", "invalid_request_error"), exc.body
            if not retry:
                return exc
            await asyncio.sleep(0.02 * (1 + k % 5))


def _race(server: Any, conv_id: str, retry: bool, turns: int = TURNS) -> list[Any]:
    async def main() -> list[Any]:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="t", max_retries=0,
                                      timeout=60) as client:
            return await asyncio.gather(*(_turn(client, conv_id, k, retry) for k in range(turns)))

    return asyncio.run(main())


def _check_contiguous(client: openai.OpenAI, conv_id: str, landed: dict[int, Any]) -> list[dict[str, Any]]:
    items = [i.model_dump(exclude_unset=True) for i in client.conversations.items.list(conv_id, order="asc",
                                                                                        limit=100)]
    assert items[0]["content"][0]["text"] == "seed"
    body = items[1:]
    assert len(body) == 3 * len(landed)  # nothing lost, nothing from refused turns
    for start in range(0, len(body), 3):
        user, reasoning, message = body[start:start + 3]
        k = int(user["content"][0]["text"].split()[1])
        response = landed[k]
        assert [reasoning["id"], message["id"]] == [o.id for o in response.output]
        assert reasoning["type"] == "reasoning" and message["content"][0]["text"] == f"answer {k} done"
    assert len({i["id"] for i in items}) == len(items)
    return body


@pytest.fixture
def seeded(client: openai.OpenAI, upstream: FakeUpstream) -> str:
    upstream.responder = _answer
    return client.conversations.create(items=[{"role": "user", "content": "seed"}]).id


def test_racing_turns_are_refused_or_land_whole(client: openai.OpenAI, server: Any, seeded: str) -> None:
    results = _race(server, seeded, retry=False)
    landed = {k: r for k, r in enumerate(results) if not isinstance(r, Exception)}
    refused = [k for k, r in enumerate(results) if isinstance(r, Exception)]
    assert landed and len(landed) + len(refused) == TURNS
    assert all(r.status == "completed" and r.conversation.id == seeded for r in landed.values())
    body = _check_contiguous(client, seeded, landed)
    texts = {i["content"][0]["text"] for i in body if i["type"] == "message"}
    assert not any(f"turn {k}" in texts for k in refused)


def test_racing_turns_with_retries_all_land_in_order(client: openai.OpenAI, server: Any, upstream: FakeUpstream,
                                                     seeded: str) -> None:
    results = _race(server, seeded, retry=True, turns=24)  # 64 retrying clients mostly measure polling
    landed = dict(enumerate(results))
    assert all(r is not None and r.status == "completed" for r in landed.values())
    body = _check_contiguous(client, seeded, landed)
    # every turn saw every turn committed before it: its context is the conversation so far
    order = [int(i["content"][0]["text"].split()[1]) for i in body[::3]]
    seen = {r["messages"][-1]["content"]: r["messages"] for r in upstream.requests}
    for n, k in enumerate(order):
        messages = seen[f"turn {k}"]
        assert len(messages) == 2 + 2 * n, (k, n)
        assert [m["content"] for m in messages[1:-1:2]] == [f"turn {j}" for j in order[:n]]


def test_items_added_during_turns_stay_whole(client: openai.OpenAI, server: Any, seeded: str) -> None:
    """items.create batches racing with responses: each batch and each turn stays contiguous."""

    async def main() -> list[Any]:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="t", max_retries=0,
                                      timeout=60) as ac:
            async def add(b: int) -> None:
                await ac.conversations.items.create(
                    seeded, items=[{"role": "user", "content": f"batch {b} item {i}"} for i in range(5)])

            turns = [_turn(ac, seeded, k, retry=True) for k in range(8)]
            return await asyncio.gather(*turns, *(add(b) for b in range(16)))

    results = asyncio.run(main())
    items = [i.model_dump(exclude_unset=True) for i in client.conversations.items.list(seeded, order="asc",
                                                                                        limit=100)]
    assert len(items) == 1 + 8 * 3 + 16 * 5
    texts = [i["content"][0]["text"] if i["type"] == "message" else i["type"] for i in items]
    for b in range(16):
        start = texts.index(f"batch {b} item 0")
        assert texts[start:start + 5] == [f"batch {b} item {i}" for i in range(5)]
    for k, response in enumerate(results[:8]):
        start = texts.index(f"turn {k}")
        assert [i["id"] for i in items[start + 1:start + 3]] == [o.id for o in response.output]


@pytest.mark.parametrize("stream", [False, True])
def test_a_turn_longer_than_the_lock_keeps_its_conversation(make_server: Any, upstream: FakeUpstream,
                                                            stream: bool) -> None:
    """The lock is renewed with the running response's lease, so it does not lapse mid-turn."""
    server = make_server(lease_seconds=0.9, conversation_lock_seconds=1.0)  # renewed every 0.3 s
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    conv = client.conversations.create().id
    upstream.queue(text(" ".join(["slow"] * 10), delay=0.25))  # ~2.75 s, far past the 1 s lock
    done: list[Any] = []

    def long_turn() -> None:
        if stream:
            with client.responses.stream(model=MODEL, input="long", conversation=conv) as events:
                done.append(events.get_final_response())
        else:
            done.append(client.responses.create(model=MODEL, input="long", conversation=conv))

    runner = threading.Thread(target=long_turn)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while not upstream.requests:  # the turn holds the lock once its model request is out
            assert time.monotonic() < deadline and runner.is_alive()
            time.sleep(0.01)
        time.sleep(1.2)  # the original 1 s lock has lapsed; only renewal still holds it
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(model=MODEL, input="cut in", conversation=conv)
        assert refused.value.code == "conversation_locked"
    finally:
        runner.join(30)
    assert done and done[0].status == "completed"
    texts = [i.content[0].text for i in client.conversations.items.list(conv, order="asc").data]
    assert texts == ["long", " ".join(["slow"] * 10)]
