"""The listing extensions the console searches with: ``GET /v1/conversations`` and ``metadata[key]=value``
filters on it and on ``GET /v1/responses``; each principal lists only its own objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import MODEL
from tests.fake_upstream import ThreadServer

ALICE, BOB = "sk-alice-0123456789abcdef", "sk-bob-0123456789abcdef"
ODD_KEY = 'a.b"c,d{e}\\f'  # a key holding the characters JSON paths give meaning to


def _client(server: ThreadServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _ids(page: dict[str, Any]) -> list[str]:
    return [o["id"] for o in page["data"]]


def test_responses_by_metadata(make_server: Callable[..., ThreadServer]) -> None:
    server = make_server(api_keys={ALICE: "alice", BOB: "bob"})
    alice, bob = _client(server, ALICE), _client(server, BOB)

    def create(client: httpx.Client, metadata: dict[str, str]) -> str:
        r = client.post("/v1/responses", json={"model": MODEL, "input": "hi", "metadata": metadata})
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    red = create(alice, {"team": "red", "env": "prod"})
    red_dev = create(alice, {"team": "red", "env": "dev"})
    blue = create(alice, {"team": "blue", ODD_KEY: "x,y"})
    create(alice, {})
    bobs_red = create(bob, {"team": "red"})

    def search(client: httpx.Client, **params: Any) -> list[str]:
        r = client.get("/v1/responses", params=params)
        assert r.status_code == 200, r.text
        return _ids(r.json())

    assert search(alice, **{"metadata[team]": "red"}) == [red_dev, red]
    assert search(alice, **{"metadata[team]": "red", "metadata[env]": "prod"}) == [red]
    assert search(alice, **{"metadata[team]": "red", "order": "asc", "limit": 1}) == [red]
    assert search(alice, **{"metadata[team]": "green"}) == []
    assert search(alice, **{f"metadata[{ODD_KEY}]": "x,y"}) == [blue]
    assert search(alice, **{"metadata[a.b]": "x,y"}) == []
    assert search(bob, **{"metadata[team]": "red"}) == [bobs_red]  # never another principal's
    r = alice.get("/v1/responses", params={"metadata[" + "k" * 65 + "]": "v"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "metadata"


def test_conversations_listing(make_server: Callable[..., ThreadServer]) -> None:
    server = make_server(api_keys={ALICE: "alice", BOB: "bob"})
    alice, bob = _client(server, ALICE), _client(server, BOB)
    made = [alice.post("/v1/conversations", json={"metadata": {"n": str(i), "group": "even" if i % 2 == 0 else "odd"}})
            .json()["id"] for i in range(5)]
    theirs = bob.post("/v1/conversations", json={"metadata": {"group": "even"}}).json()["id"]

    page = alice.get("/v1/conversations", params={"limit": 2}).json()
    assert page["object"] == "list"
    assert _ids(page) == made[::-1][:2] and page["has_more"] is True
    assert page["data"][0] == {"id": made[4], "object": "conversation", "created_at": page["data"][0]["created_at"],
                               "metadata": {"n": "4", "group": "even"}}
    rest = alice.get("/v1/conversations", params={"limit": 10, "after": page["last_id"]}).json()
    assert _ids(rest) == made[::-1][2:] and rest["has_more"] is False
    assert _ids(alice.get("/v1/conversations", params={"order": "asc"}).json()) == made
    evens = alice.get("/v1/conversations", params={"metadata[group]": "even"}).json()
    assert _ids(evens) == [made[4], made[2], made[0]]
    assert _ids(bob.get("/v1/conversations").json()) == [theirs]
    unknown = alice.get("/v1/conversations", params={"after": theirs})  # bob's id is no cursor for alice
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "after"
    assert alice.get("/v1/conversations", params={"limit": 0}).status_code == 400
    assert httpx.get(server.url + "/v1/conversations").status_code == 401
