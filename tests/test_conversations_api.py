"""The Conversations API over HTTP: shapes (validated against the SDK's models), every item type
round-tripping exactly, pagination edges, deletion, errors and ownership."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai.types.conversations import (
    Conversation,
    ConversationDeletedResource,
    ConversationItem,
    ConversationItemList,
)
from pydantic import TypeAdapter

ITEM = TypeAdapter(ConversationItem)

# One item of every type a conversation holds, each complete (id, status): what goes in comes back.
EVERY_ITEM: list[dict[str, Any]] = [
    {"type": "message", "id": "msg_user1", "role": "user", "status": "completed", "content": [
        {"type": "input_text", "text": "look at these"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
        {"type": "input_file", "filename": "a.txt", "file_data": "data:text/plain;base64,aGVsbG8="},
    ]},
    {"type": "message", "id": "msg_sys1", "role": "system", "status": "completed",
     "content": [{"type": "input_text", "text": "be brief"}]},
    {"type": "message", "id": "msg_dev1", "role": "developer", "status": "completed",
     "content": [{"type": "input_text", "text": "use tools"}]},
    {"type": "message", "id": "msg_asst1", "role": "assistant", "status": "completed", "content": [
        {"type": "output_text", "text": "see [1]", "annotations": [
            {"type": "url_citation", "url": "https://example.com", "title": "Ex", "start_index": 4,
             "end_index": 7},
            {"type": "file_citation", "file_id": "file_1", "filename": "a.txt", "index": 0},
        ]},
        {"type": "refusal", "refusal": "I will not do that."},
    ]},
    {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_user_id",
     "arguments": "{\"username\":\"charlie\"}", "status": "completed"},
    {"type": "function_call_output", "id": "fco_1", "call_id": "call_1", "output": "user_charlie",
     "status": "completed"},
    {"type": "function_call_output", "id": "fco_2", "call_id": "call_1", "status": "completed",
     "output": [{"type": "input_text", "text": "part output"}]},
    {"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "wf", "tools": [
        {"name": "get_user_id", "input_schema": {"type": "object", "properties": {"username": {"type": "string"}}},
         "description": "Look up a user", "annotations": None},
    ], "error": None},
    {"type": "mcp_call", "id": "mcp_1", "server_label": "wf", "name": "get_user_id",
     "arguments": "{\"username\":\"charlie\"}", "output": "user_charlie", "error": None, "status": "completed",
     "approval_request_id": None},
    {"type": "mcp_approval_request", "id": "mcpr_1", "server_label": "wf", "name": "check_file_access",
     "arguments": "{}"},
    {"type": "mcp_approval_response", "id": "mcpa_1", "approval_request_id": "mcpr_1", "approve": False,
     "reason": "no"},
    {"type": "web_search_call", "id": "ws_1", "status": "completed",
     "action": {"type": "search", "query": "weather"}},
    {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["q"],
     "results": [{"file_id": "file_1", "filename": "a.txt", "score": 0.5, "text": "hit", "attributes": {}}]},
    {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thinking"}],
     "content": [{"type": "reasoning_text", "text": "step"}], "encrypted_content": None, "status": "completed"},
    {"type": "computer_call", "id": "cu_1", "call_id": "call_cu", "status": "completed",
     "action": {"type": "click", "button": "left", "x": 1, "y": 2}, "pending_safety_checks": []},
    {"type": "computer_call_output", "id": "cuo_1", "call_id": "call_cu", "status": "completed",
     "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,iVBORw0KGgo="}},
    {"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": "aGk="},
    {"type": "code_interpreter_call", "id": "ci_1", "status": "completed", "code": "1+1", "container_id": "c1",
     "outputs": [{"type": "logs", "logs": "2"}]},
    {"type": "local_shell_call", "id": "lsh_1", "call_id": "call_ls", "status": "completed",
     "action": {"type": "exec", "command": ["ls"], "env": {}}},
    {"type": "local_shell_call_output", "id": "lsho_1", "output": "{\"stdout\":\"\"}", "status": "completed"},
]
MORE_ITEMS: list[dict[str, Any]] = [
    {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_ct", "name": "grammar", "input": "x"},
    {"type": "custom_tool_call_output", "id": "ctco_1", "call_id": "call_ct", "output": "ok"},
    {"type": "shell_call", "id": "sh_1", "call_id": "call_sh", "status": "completed",
     "action": {"commands": ["ls"]}},
    {"type": "shell_call_output", "id": "sho_1", "call_id": "call_sh", "status": "completed",
     "output": [{"stdout": "", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}]},
    {"type": "apply_patch_call", "id": "apc_1", "call_id": "call_ap", "status": "completed",
     "operation": {"type": "delete_file", "path": "a.txt"}},
    {"type": "apply_patch_call_output", "id": "apco_1", "call_id": "call_ap", "status": "completed"},
]


def _raw(server: Any, method: str, path: str, key: str = "test", **kw: Any) -> httpx.Response:
    return httpx.request(method, server.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=30, **kw)


def _all_items(client: openai.OpenAI, conv_id: str) -> list[dict[str, Any]]:
    return [i.model_dump(exclude_unset=True) for i in client.conversations.items.list(conv_id, order="asc",
                                                                                        limit=100)]


def _assert_error(r: httpx.Response, status: int, param: str | None = None, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err


# -- conversations ---------------------------------------------------------------------------


def test_crud_shapes(client: openai.OpenAI, server: Any) -> None:
    r = _raw(server, "POST", "/v1/conversations", json={"metadata": {"topic": "demo"}})
    assert r.status_code == 200
    conv = Conversation.model_validate(r.json())
    assert conv.id.startswith("conv_") and conv.object == "conversation" and conv.metadata == {"topic": "demo"}
    assert set(r.json()) == {"id", "object", "created_at", "metadata"}

    got = client.conversations.retrieve(conv.id)
    assert got.model_dump() == conv.model_dump()

    updated = client.conversations.update(conv.id, metadata={"topic": "other", "k": "v"})
    assert updated.metadata == {"topic": "other", "k": "v"}
    assert client.conversations.retrieve(conv.id).metadata == {"topic": "other", "k": "v"}
    r = _raw(server, "POST", f"/v1/conversations/{conv.id}", json={"metadata": None})
    assert r.status_code == 200 and r.json()["metadata"] == {}

    r = _raw(server, "DELETE", f"/v1/conversations/{conv.id}")
    deleted = ConversationDeletedResource.model_validate(r.json())
    assert (deleted.id, deleted.deleted, deleted.object) == (conv.id, True, "conversation.deleted")
    _assert_error(_raw(server, "GET", f"/v1/conversations/{conv.id}"), 404)
    _assert_error(_raw(server, "DELETE", f"/v1/conversations/{conv.id}"), 404)


def test_create_without_body(server: Any) -> None:
    r = _raw(server, "POST", "/v1/conversations")
    assert r.status_code == 200 and r.json()["metadata"] == {}
    r = _raw(server, "POST", "/v1/conversations", json={})
    assert r.status_code == 200


def test_every_item_type_round_trips_exactly(client: openai.OpenAI, server: Any) -> None:
    conv = client.conversations.create(items=EVERY_ITEM)  # type: ignore[arg-type]
    r = _raw(server, "POST", f"/v1/conversations/{conv.id}/items", json={"items": MORE_ITEMS})
    assert r.status_code == 200, r.text
    every = EVERY_ITEM + MORE_ITEMS
    include = ["file_search_call.results", "web_search_call.action.sources", "web_search_call.results"]
    r = _raw(server, "GET", f"/v1/conversations/{conv.id}/items",
             params={"order": "asc", "limit": 100, "include": include})
    body = r.json()
    ConversationItemList.model_validate(body)
    assert body["data"] == every
    for item in every:
        r = _raw(server, "GET", f"/v1/conversations/{conv.id}/items/{item['id']}", params={"include": include})
        assert r.json() == item
        ITEM.validate_python(r.json())
    # Without the include, a search call's results are not shown (they stay stored).
    r = _raw(server, "GET", f"/v1/conversations/{conv.id}/items", params={"order": "asc", "limit": 100})
    searches = [i for i in r.json()["data"] if i["type"] == "file_search_call"]
    assert searches and all(i["results"] is None for i in searches)


def test_ids_and_defaults_are_filled_in(client: openai.OpenAI, server: Any) -> None:
    conv = client.conversations.create()
    r = _raw(server, "POST", f"/v1/conversations/{conv.id}/items", json={"items": [
        {"role": "user", "content": "hi"},  # no type: a message
        {"type": "message", "role": "assistant", "content": "hello"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "1"},
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_x", "approve": True},
        {"type": "computer_call_output", "call_id": "c2",
         "output": {"type": "computer_screenshot", "image_url": "https://example.com/a.png"}},
        {"type": "reasoning", "summary": []},
        {"type": "mcp_list_tools", "server_label": "wf", "tools": []},
        {"role": "user", "content": [{"type": "input_image", "image_url": "https://example.com/a.png"}]},
        {"type": "computer_call", "call_id": "c3", "action": {"type": "wait"}, "pending_safety_checks": []},
    ]})
    assert r.status_code == 200, r.text
    added = ConversationItemList.model_validate(r.json())
    prefixes = [i.id.split("_")[0] for i in added.data]
    assert prefixes == ["msg", "msg", "fc", "fco", "mcpa", "cuo", "rs", "mcpl", "msg", "cu"]
    body = r.json()
    assert (body["first_id"], body["last_id"], body["has_more"]) == (added.data[0].id, added.data[-1].id, False)
    assert body["data"][0] == {"type": "message", "id": added.data[0].id, "role": "user", "status": "completed",
                               "content": [{"type": "input_text", "text": "hi"}]}
    assert body["data"][1]["content"] == [{"type": "output_text", "text": "hello", "annotations": []}]
    assert body["data"][5]["status"] == "completed" and body["data"][9]["status"] == "completed"
    assert body["data"][8]["content"][0]["detail"] == "auto"
    assert _all_items(client, conv.id) == [i.model_dump(exclude_unset=True) for i in added.data]


# -- pagination ------------------------------------------------------------------------------


@pytest.fixture
def conv45(client: openai.OpenAI) -> tuple[str, list[str]]:
    """A conversation of 45 messages (created 20 + 20 + 5 at a time)."""
    conv = client.conversations.create(items=[{"role": "user", "content": f"m{i}"} for i in range(20)])
    for start, n in ((20, 20), (40, 5)):
        client.conversations.items.create(conv.id, items=[{"role": "user", "content": f"m{start + i}"}
                                                          for i in range(n)])
    ids = [i.id for i in client.conversations.items.list(conv.id, order="asc", limit=100)]
    assert len(ids) == 45
    return conv.id, ids


def _page(server: Any, conv_id: str, **params: Any) -> dict[str, Any]:
    r = _raw(server, "GET", f"/v1/conversations/{conv_id}/items", params=params)
    assert r.status_code == 200, r.text
    ConversationItemList.model_validate({**r.json(), "first_id": r.json()["first_id"] or "",
                                         "last_id": r.json()["last_id"] or ""})
    return r.json()


def test_pagination_both_orders(server: Any, conv45: tuple[str, list[str]]) -> None:
    conv_id, ids = conv45
    texts = [f"m{i}" for i in range(45)]
    for order, expected in (("asc", ids), ("desc", ids[::-1])):
        seen, after, pages = [], None, 0
        while True:
            page = _page(server, conv_id, order=order, limit=15, **({"after": after} if after else {}))
            pages += 1
            seen += [d["id"] for d in page["data"]]
            assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
            if not page["has_more"]:
                break
            after = page["last_id"]
        assert seen == expected and pages == 3  # 45 = 3 x 15: has_more is false on the third page exactly
    default = _page(server, conv_id)
    assert [d["id"] for d in default["data"]] == ids[::-1][:20] and default["has_more"] is True
    assert default["data"][0]["content"][0]["text"] == texts[-1]


def test_pagination_edges(server: Any, conv45: tuple[str, list[str]]) -> None:
    conv_id, ids = conv45
    assert _page(server, conv_id, order="asc", limit=44)["has_more"] is True
    assert _page(server, conv_id, order="asc", limit=45)["has_more"] is False
    assert _page(server, conv_id, order="asc", limit=100)["has_more"] is False
    assert _page(server, conv_id, order="asc", after=ids[-2], limit=1) == {
        **_page(server, conv_id, order="asc", after=ids[-2], limit=1), "has_more": False}
    for order, last in (("asc", ids[-1]), ("desc", ids[0])):
        empty = _page(server, conv_id, order=order, after=last)
        assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
    one = _page(server, conv_id, order="desc", after=ids[1], limit=5)
    assert [d["id"] for d in one["data"]] == [ids[0]] and one["has_more"] is False
    for bad in (0, 101, -1):
        _assert_error(_raw(server, "GET", f"/v1/conversations/{conv_id}/items", params={"limit": bad}), 400,
                      param="limit")
    _assert_error(_raw(server, "GET", f"/v1/conversations/{conv_id}/items", params={"order": "up"}), 400,
                  param="order")
    _assert_error(_raw(server, "GET", f"/v1/conversations/{conv_id}/items", params={"after": "msg_nope"}), 400,
                  param="after")


def test_include_is_accepted_and_checked(client: openai.OpenAI, server: Any,
                                         conv45: tuple[str, list[str]]) -> None:
    conv_id, ids = conv45
    page = client.conversations.items.list(conv_id, include=["message.input_image.image_url",
                                                             "reasoning.encrypted_content"], limit=2)
    assert len(page.data) == 2
    item = client.conversations.items.retrieve(ids[0], conversation_id=conv_id,
                                               include=["file_search_call.results"])
    assert item.id == ids[0]
    added = client.conversations.items.create(conv_id, items=[{"role": "user", "content": "x"}],
                                              include=["message.input_image.image_url"])
    assert len(added.data) == 1
    for method, path in (("GET", f"/v1/conversations/{conv_id}/items"),
                         ("GET", f"/v1/conversations/{conv_id}/items/{ids[0]}"),
                         ("POST", f"/v1/conversations/{conv_id}/items")):
        for params in ({"include": "bogus.field"}, {"include[]": "bogus.field"}):
            r = _raw(server, method, path, params=params, json={"items": [{"role": "user", "content": "y"}]})
            _assert_error(r, 400, param="include", code="invalid_value")
    assert len(client.conversations.items.list(conv_id, limit=100).data) == 46


def test_sdk_auto_pagination_sees_everything(client: openai.OpenAI, conv45: tuple[str, list[str]]) -> None:
    conv_id, ids = conv45
    assert [i.id for i in client.conversations.items.list(conv_id, limit=7)] == ids[::-1]


# -- deletion --------------------------------------------------------------------------------


def test_delete_item(client: openai.OpenAI, server: Any, conv45: tuple[str, list[str]]) -> None:
    conv_id, ids = conv45
    r = _raw(server, "DELETE", f"/v1/conversations/{conv_id}/items/{ids[10]}")
    assert r.status_code == 200
    assert Conversation.model_validate(r.json()).id == conv_id
    remaining = ids[:10] + ids[11:]
    assert [i.id for i in client.conversations.items.list(conv_id, order="asc", limit=100)] == remaining
    _assert_error(_raw(server, "GET", f"/v1/conversations/{conv_id}/items/{ids[10]}"), 404)
    _assert_error(_raw(server, "DELETE", f"/v1/conversations/{conv_id}/items/{ids[10]}"), 404)
    # pagination across the gap stays exact
    page = _page(server, conv_id, order="asc", after=ids[9], limit=1)
    assert page["data"][0]["id"] == ids[11]
    # an id that is free again can be reused, and goes to the end
    client.conversations.items.create(conv_id, items=[{"type": "message", "id": ids[10], "role": "user",
                                                       "content": "back"}])
    assert [i.id for i in client.conversations.items.list(conv_id, order="asc", limit=100)] == [*remaining, ids[10]]


def test_delete_conversation_removes_items(client: openai.OpenAI, server: Any,
                                           conv45: tuple[str, list[str]]) -> None:
    conv_id, ids = conv45
    other = client.conversations.create(items=[{"role": "user", "content": "keep me"}])
    client.conversations.delete(conv_id)
    for path in (f"/v1/conversations/{conv_id}", f"/v1/conversations/{conv_id}/items",
                 f"/v1/conversations/{conv_id}/items/{ids[0]}"):
        _assert_error(_raw(server, "GET", path), 404)
    _assert_error(_raw(server, "POST", f"/v1/conversations/{conv_id}/items",
                       json={"items": [{"role": "user", "content": "x"}]}), 404)
    assert len(client.conversations.items.list(other.id).data) == 1


def test_deleted_conversation_leaves_no_rows(make_server: Any, tmp_path: Any) -> None:
    from rejoinder.store.sqlite_driver import SQLITE as sqlite3  # the store's library

    db = tmp_path / "c.db"
    server = make_server(storage_url=f"sqlite:///{db}")
    r = _raw(server, "POST", "/v1/conversations", json={"items": [{"role": "user", "content": "x"}] * 3})
    conv_id = r.json()["id"]
    _raw(server, "DELETE", f"/v1/conversations/{conv_id}")
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from conversation_items where conversation_id = ?",
                            (conv_id,)).fetchone() == (0,)


# -- errors ----------------------------------------------------------------------------------


def test_limits_and_validation_errors(client: openai.OpenAI, server: Any) -> None:
    twenty_one = [{"role": "user", "content": str(i)} for i in range(21)]
    _assert_error(_raw(server, "POST", "/v1/conversations", json={"items": twenty_one}), 400, param="items",
                  code="array_above_max_length")
    conv = client.conversations.create(items=twenty_one[:20])
    _assert_error(_raw(server, "POST", f"/v1/conversations/{conv.id}/items", json={"items": twenty_one}), 400,
                  param="items", code="array_above_max_length")
    assert len(_all_items(client, conv.id)) == 20  # nothing of the refused batch was added

    bad_metadata = [{"k" * 65: "v"}, {"k": "v" * 513}, {str(i): "v" for i in range(17)}, {"k": 1}, ["x"]]
    for md in bad_metadata:
        r = _raw(server, "POST", "/v1/conversations", json={"metadata": md})
        _assert_error(r, 400)
        assert r.json()["error"]["param"].startswith("metadata")
        _assert_error(_raw(server, "POST", f"/v1/conversations/{conv.id}", json={"metadata": md}), 400)
    _assert_error(_raw(server, "POST", f"/v1/conversations/{conv.id}", json={}), 400, param="metadata",
                  code="missing_required_parameter")

    cases = [
        ({"type": "telepathy", "content": "x"}, "items[0].type"),
        ({"type": "item_reference", "id": "msg_1"}, "items[0].type"),
        ({"type": "compaction_trigger"}, "items[0].type"),
        ({"role": "wizard", "content": "x"}, "items[0].role"),
        ({"type": "function_call", "name": "f", "arguments": "{}"}, "items[0].call_id"),
        ({"type": "message", "role": "user", "content": [{"type": "output_text", "text": "x"}]},
         "items[0].content[0].type"),
        ("just a string", "items[0]"),
    ]
    for item, param in cases:
        r = _raw(server, "POST", f"/v1/conversations/{conv.id}/items", json={"items": [item]})
        _assert_error(r, 400, param=param)
    _assert_error(_raw(server, "POST", f"/v1/conversations/{conv.id}/items", json={}), 400, param="items")
    _assert_error(_raw(server, "POST", f"/v1/conversations/{conv.id}/items", json={"items": "x"}), 400,
                  param="items")
    _assert_error(_raw(server, "POST", "/v1/conversations", json={"itemz": []}), 400, param="itemz",
                  code="unknown_parameter")
    r = httpx.post(server.url + "/v1/conversations", content=b"{nope", timeout=10)
    _assert_error(r, 400, code="invalid_json")
    dup = {"type": "message", "id": "msg_dup", "role": "user", "content": "x"}
    _assert_error(_raw(server, "POST", f"/v1/conversations/{conv.id}/items", json={"items": [dup, dup]}), 400,
                  code="duplicate_item")
    client.conversations.items.create(conv.id, items=[dup])  # type: ignore[list-item]
    _assert_error(_raw(server, "POST", f"/v1/conversations/{conv.id}/items", json={"items": [dup]}), 400,
                  code="duplicate_item")
    assert len(_all_items(client, conv.id)) == 21


def test_unknown_ids_are_404(client: openai.OpenAI, server: Any) -> None:
    conv = client.conversations.create(items=[{"role": "user", "content": "x"}])
    for method, path, body in [
        ("GET", "/v1/conversations/conv_missing", None),
        ("POST", "/v1/conversations/conv_missing", {"metadata": {}}),
        ("DELETE", "/v1/conversations/conv_missing", None),
        ("GET", "/v1/conversations/conv_missing/items", None),
        ("POST", "/v1/conversations/conv_missing/items", {"items": [{"role": "user", "content": "x"}]}),
        ("GET", "/v1/conversations/conv_missing/items/msg_x", None),
        ("DELETE", "/v1/conversations/conv_missing/items/msg_x", None),
        ("GET", f"/v1/conversations/{conv.id}/items/msg_missing", None),
        ("DELETE", f"/v1/conversations/{conv.id}/items/msg_missing", None),
    ]:
        r = _raw(server, method, path, json=body)
        _assert_error(r, 404)
        assert "not found" in r.json()["error"]["message"]


# -- ownership -------------------------------------------------------------------------------


def test_other_principals_get_404_everywhere(make_server: Any) -> None:
    server = make_server(api_keys={"k1": "alice", "k2": "bob"})
    r = _raw(server, "POST", "/v1/conversations", key="k1", json={"items": [{"role": "user", "content": "secret"}],
                                                                  "metadata": {"a": "1"}})
    conv_id = r.json()["id"]
    item_id = _raw(server, "GET", f"/v1/conversations/{conv_id}/items", key="k1").json()["first_id"]
    attempts = [
        ("GET", f"/v1/conversations/{conv_id}", None),
        ("POST", f"/v1/conversations/{conv_id}", {"metadata": {"b": "2"}}),
        ("DELETE", f"/v1/conversations/{conv_id}", None),
        ("GET", f"/v1/conversations/{conv_id}/items", None),
        ("POST", f"/v1/conversations/{conv_id}/items", {"items": [{"role": "user", "content": "intrude"}]}),
        ("GET", f"/v1/conversations/{conv_id}/items/{item_id}", None),
        ("DELETE", f"/v1/conversations/{conv_id}/items/{item_id}", None),
        ("POST", "/v1/responses", {"model": "fake-model", "input": "hi", "conversation": conv_id}),
        ("POST", "/v1/responses", {"model": "fake-model", "input": "hi", "conversation": {"id": conv_id},
                                   "stream": True}),
    ]
    for method, path, body in attempts:
        r = _raw(server, method, path, key="k2", json=body)
        _assert_error(r, 404)
        assert r.json()["error"]["message"] == f"Conversation with id '{conv_id}' not found."
    _assert_error(_raw(server, "GET", f"/v1/conversations/{conv_id}"), 401)
    # alice's conversation is untouched, and not locked by bob's refused responses
    r = _raw(server, "GET", f"/v1/conversations/{conv_id}", key="k1")
    assert r.json()["metadata"] == {"a": "1"}
    page = _raw(server, "GET", f"/v1/conversations/{conv_id}/items", key="k1").json()
    assert [d["id"] for d in page["data"]] == [item_id]
    r = _raw(server, "POST", "/v1/responses", key="k1",
             json={"model": "fake-model", "input": "hi", "conversation": conv_id})
    assert r.status_code == 200, r.text
