"""``conversation`` on POST /v1/responses: the conversation is the model's context, and every turn's
input and output items join it in order; tool turns continue inside it (function and MCP tools)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.conversations import ConversationItem
from pydantic import TypeAdapter

from tests.conftest import MODEL
from tests.fake_upstream import FakeUpstream, Turn, calls, text
from tests.helpers import check_stream, sse_events
from tests.mcp_server import mcp_log, mcp_server  # noqa: F401  (fixtures)

ITEM = TypeAdapter(ConversationItem)

FUNCTION_TOOLS = [
    {"type": "function", "name": name, "description": f"{name} tool",
     "parameters": {"type": "object", "properties": {a: {"type": "string"} for a in args}, "required": list(args)}}
    for name, args in (("get_user_id", ("username",)), ("get_user_permissions", ("user_id",)),
                       ("check_file_access", ("user_id", "filename")))
]
# The security-check workflow of ../shared/recordings/example-gpt-4o-streaming-tool-call.json.
WORKFLOW_PROMPT = ("Help me with this security check: First, get the user ID for 'charlie', then get the permissions "
                   "for that user ID, and finally check if that user can access 'secret_file.txt'. Return only one "
                   "tool call per step. Summarize the final result with a single 'yes' or 'no' response.")


def _items(client: openai.OpenAI, conv_id: str) -> list[dict[str, Any]]:
    out = []
    for item in client.conversations.items.list(conv_id, order="asc", limit=100):
        data = item.model_dump(exclude_unset=True)
        ITEM.validate_python(data)
        out.append(data)
    return out


def _post(server: Any, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + "/v1/responses", json=body, timeout=30)


def _output_dicts(response: Any) -> list[dict[str, Any]]:
    return [o.model_dump(exclude_unset=True) for o in response.output]


def test_context_is_the_conversation_and_turns_append(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    conv = client.conversations.create(items=[
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "My name is Ada."},
        {"type": "message", "role": "assistant", "content": "Noted."},
    ])
    upstream.queue(text("Hi Ada"), text("Still Ada"))
    r1 = client.responses.create(model=MODEL, input="Who am I?", conversation=conv.id)
    assert r1.conversation is not None and r1.conversation.id == conv.id
    assert upstream.requests[-1]["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Who am I?"},
    ]
    # items added between turns are context too (no side cache of chat messages)
    client.conversations.items.create(conv.id, items=[{"role": "user", "content": "Remember: blue."}])
    r2 = client.responses.create(model=MODEL, input=[{"role": "user", "content": "Again?"}],
                                 conversation={"id": conv.id})
    assert r2.conversation is not None and r2.conversation.id == conv.id
    assert [m["content"] for m in upstream.requests[-1]["messages"]][-4:] == [
        "Who am I?", "Hi Ada", "Remember: blue.", "Again?"]

    items = _items(client, conv.id)
    assert [i["type"] for i in items] == ["message"] * 8
    assert items[3]["content"] == [{"type": "input_text", "text": "Who am I?"}]
    assert items[4] == _output_dicts(r1)[0]
    assert items[7] == _output_dicts(r2)[0]
    inputs = client.responses.input_items.list(r1.id)
    assert [i.id for i in inputs] == [items[3]["id"]]  # the response's input item is the conversation's item
    assert client.responses.retrieve(r2.id).conversation.id == conv.id  # type: ignore[union-attr]


def _run_function_workflow(client: openai.OpenAI, upstream: FakeUpstream, conv_id: str,
                           send: Any) -> list[Any]:
    """Three turns, the llama-stack Agent way: after the first, only tool outputs are sent."""
    upstream.queue(
        Turn(text="Looking up.", tool_calls=[("get_user_id", {"username": "charlie"})]),
        calls(("get_user_permissions", {"user_id": "user_11111"})),
        calls(("check_file_access", {"user_id": "user_11111", "filename": "secret_file.txt"})),
        text("no"),
    )
    results = {"get_user_id": "user_11111", "get_user_permissions": "guest", "check_file_access": "denied"}
    responses = [send({"model": MODEL, "input": WORKFLOW_PROMPT, "tools": FUNCTION_TOOLS,
                       "conversation": conv_id})]
    while (pending := [o for o in responses[-1]["output"] if o["type"] == "function_call"]):
        outputs = [{"type": "function_call_output", "call_id": c["call_id"], "output": results[c["name"]]}
                   for c in pending]
        responses.append(send({"model": MODEL, "input": outputs, "tools": FUNCTION_TOOLS,
                               "conversation": conv_id}))
    return responses


def _check_workflow(client: openai.OpenAI, upstream: FakeUpstream, conv_id: str, responses: list[Any]) -> None:
    assert [r["status"] for r in responses] == ["completed"] * 4
    assert responses[-1]["output"][-1]["content"][0]["text"] == "no"
    items = _items(client, conv_id)
    assert [(i["type"], i.get("name") or i.get("role")) for i in items] == [
        ("message", "user"), ("message", "assistant"), ("function_call", "get_user_id"),
        ("function_call_output", None), ("function_call", "get_user_permissions"),
        ("function_call_output", None), ("function_call", "check_file_access"),
        ("function_call_output", None), ("message", "assistant"),
    ]
    assert [i["output"] for i in items if i["type"] == "function_call_output"] == ["user_11111", "guest", "denied"]
    # the conversation's items are exactly each turn's input then output, ids included
    stored_inputs = [[i.model_dump(exclude_unset=True) for i in client.responses.input_items.list(r["id"],
                                                                                                order="asc")]
                     for r in responses]
    expected = []
    for r, inputs in zip(responses, stored_inputs, strict=True):
        expected += inputs + r["output"]
    assert [i["id"] for i in items] == [i["id"] for i in expected]
    assert all(items[n + 1]["call_id"] == items[n]["call_id"] for n in (2, 4, 6))
    # the second and third inference saw the calls found in the conversation, with their results
    second = upstream.requests[1]["messages"]
    assert second[-2]["tool_calls"][0]["id"] == items[2]["call_id"]
    assert second[-2]["content"] == "Looking up."
    assert second[-1] == {"role": "tool", "tool_call_id": items[2]["call_id"], "content": "user_11111"}
    third = upstream.requests[2]["messages"]
    assert third[-1] == {"role": "tool", "tool_call_id": items[4]["call_id"], "content": "guest"}
    last = upstream.requests[3]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "assistant", "tool", "assistant", "tool"]
    assert last[-1] == {"role": "tool", "tool_call_id": items[6]["call_id"], "content": "denied"}


def test_function_tool_workflow_non_streaming(client: openai.OpenAI, server: Any, upstream: FakeUpstream) -> None:
    conv = client.conversations.create()

    def send(body: dict[str, Any]) -> dict[str, Any]:
        r = _post(server, body)
        assert r.status_code == 200, r.text
        assert r.json()["conversation"] == {"id": conv.id}
        return r.json()

    responses = _run_function_workflow(client, upstream, conv.id, send)
    _check_workflow(client, upstream, conv.id, responses)


def test_function_tool_workflow_streaming(client: openai.OpenAI, server: Any, upstream: FakeUpstream) -> None:
    conv = client.conversations.create()

    def send(body: dict[str, Any]) -> dict[str, Any]:
        final = check_stream(sse_events(server.url, body))
        assert final.conversation is not None and final.conversation.id == conv.id
        return final.model_dump(exclude_unset=True)

    responses = _run_function_workflow(client, upstream, conv.id, send)
    _check_workflow(client, upstream, conv.id, responses)


def test_mcp_workflow_across_turns(client: openai.OpenAI, upstream: FakeUpstream, mcp_server: str,  # noqa: F811
                                   mcp_log: Any) -> None:  # noqa: F811
    """Server-side MCP calls, then an approval answered in the next turn with only the approval."""
    conv = client.conversations.create()
    mcp = {"type": "mcp", "server_label": "wf", "server_url": mcp_server,
           "require_approval": {"never": {"tool_names": ["get_user_id", "get_user_permissions"]}}}
    upstream.queue(
        calls(("get_user_id", {"username": "charlie"})),
        calls(("get_user_permissions", {"user_id": "user_11111"})),
        text("charlie is a guest."),
        calls(("check_file_access", {"user_id": "user_11111", "filename": "a.txt"})),
        text("Access checked."),
    )
    r1 = client.responses.create(model=MODEL, input="What can charlie do?", tools=[mcp],  # type: ignore[list-item]
                                 conversation=conv.id)
    assert [o.type for o in r1.output] == ["mcp_list_tools", "mcp_call", "mcp_call", "message"]
    r2 = client.responses.create(model=MODEL, input="Can charlie read a.txt?", tools=[mcp],  # type: ignore[list-item]
                                 conversation=conv.id)
    assert [o.type for o in r2.output] == ["mcp_approval_request"]  # the listing is reused from the conversation
    request = r2.output[0]
    r3 = client.responses.create(
        model=MODEL, tools=[mcp], conversation=conv.id,  # type: ignore[list-item]
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}],
    )
    assert [o.type for o in r3.output] == ["mcp_call", "message"]
    assert r3.output[0].approval_request_id == request.id  # type: ignore[union-attr]
    assert mcp_log.called() == ["get_user_id", "get_user_permissions", "check_file_access"]

    items = _items(client, conv.id)
    assert [i["type"] for i in items] == [
        "message", "mcp_list_tools", "mcp_call", "mcp_call", "message",
        "message", "mcp_approval_request",
        "mcp_approval_response", "mcp_call", "message",
    ]
    outputs = _output_dicts(r1) + _output_dicts(r2) + _output_dicts(r3)
    assert [i["id"] for i in items if i["type"] not in ("mcp_approval_response",) and
            not (i["type"] == "message" and i["role"] == "user")] == [o["id"] for o in outputs]
    assert items[2]["output"] == "user_11111" and items[3]["output"] == "guest"
    # the last inference saw the whole history: both earlier MCP calls and the approved one, with results
    last = upstream.requests[-1]["messages"]
    results = [m["content"] for m in last if m["role"] == "tool"]
    assert results[:2] == ["user_11111", "guest"] and len(results) == 3


def test_errors_leave_the_conversation_usable(client: openai.OpenAI, server: Any, upstream: FakeUpstream) -> None:
    conv = client.conversations.create(items=[{"role": "user", "content": "start"}])
    r = _post(server, {"model": MODEL, "input": "x", "conversation": conv.id, "previous_response_id": "resp_1"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "mutually_exclusive_parameters"
    r = _post(server, {"model": MODEL, "input": "x", "conversation": "conv_missing"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "conversation"
    r = _post(server, {"model": MODEL, "input": "x", "conversation": {"id": "conv_missing"}, "stream": True})
    assert r.status_code == 404
    r = _post(server, {"model": MODEL, "conversation": conv.id,
                       "input": [{"type": "function_call_output", "call_id": "call_nope", "output": "1"}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_function_call_output"
    r = _post(server, {"model": "no-such-model", "input": "x", "conversation": conv.id})
    assert r.status_code in (400, 404)
    assert len(_items(client, conv.id)) == 1 and upstream.requests == []
    upstream.queue(text("fine"))  # no 4xx above left the conversation locked
    assert client.responses.create(model=MODEL, input="ok?", conversation=conv.id).status == "completed"
    assert len(_items(client, conv.id)) == 3


def test_failed_response_appends_nothing(client: openai.OpenAI, server: Any, upstream: FakeUpstream) -> None:
    conv = client.conversations.create(items=[{"role": "user", "content": "start"}])
    upstream.queue(Turn(status=500))
    r = _post(server, {"model": MODEL, "input": "boom", "conversation": conv.id}).json()
    assert r["status"] == "failed" and r["conversation"] == {"id": conv.id}
    upstream.queue(Turn(text="partial answer that breaks", break_after=3))
    final = check_stream(sse_events(server.url, {"model": MODEL, "input": "boom", "conversation": conv.id}))
    assert final.status == "failed"
    assert [i["content"][0]["text"] for i in _items(client, conv.id)] == ["start"]
    upstream.queue(text("recovered"))
    r2 = client.responses.create(model=MODEL, input="again", conversation=conv.id)
    assert r2.status == "completed"
    assert [m["content"] for m in upstream.requests[-1]["messages"]] == ["start", "again"]


def test_incomplete_response_is_appended(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    conv = client.conversations.create()
    upstream.queue(text("cut sho", finish="length"))
    r = client.responses.create(model=MODEL, input="long story", conversation=conv.id, max_output_tokens=16)
    assert r.status == "incomplete"
    items = _items(client, conv.id)
    assert [i["id"] for i in items][1:] == [o.id for o in r.output]
    assert items[1]["status"] == "incomplete"


def test_store_false_reads_the_conversation_and_writes_nothing(client: openai.OpenAI, server: Any,
                                                               upstream: FakeUpstream) -> None:
    conv = client.conversations.create(items=[{"role": "user", "content": "context"}])
    upstream.queue(text("ephemeral"), text("streamed ephemeral"))
    r = client.responses.create(model=MODEL, input="q", conversation=conv.id, store=False)
    assert r.status == "completed" and r.conversation is not None and r.conversation.id == conv.id
    assert [m["content"] for m in upstream.requests[-1]["messages"]] == ["context", "q"]
    final = check_stream(sse_events(server.url, {"model": MODEL, "input": "q2", "conversation": conv.id,
                                                 "store": False}))
    assert final.status == "completed"
    assert len(_items(client, conv.id)) == 1
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    upstream.queue(text("stored"))  # and the lock was released
    assert client.responses.create(model=MODEL, input="q3", conversation=conv.id).status == "completed"
    assert len(_items(client, conv.id)) == 3


def test_items_already_in_the_conversation_are_not_duplicated(client: openai.OpenAI, server: Any,
                                                              upstream: FakeUpstream) -> None:
    """Sending back an item the conversation holds (or a reference to it) is context, not a new item."""
    conv = client.conversations.create()
    upstream.queue(calls(("get_user_id", {"username": "charlie"})), text("done"))
    r1 = client.responses.create(model=MODEL, input="who?", tools=FUNCTION_TOOLS,  # type: ignore[arg-type]
                                 conversation=conv.id)
    call = _output_dicts(r1)[0]
    r2 = _post(server, {"model": MODEL, "tools": FUNCTION_TOOLS, "conversation": conv.id, "input": [
        call, {"type": "item_reference", "id": call["id"]},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "user_11111"},
    ]})
    assert r2.status_code == 200, r2.text
    assert [i["type"] for i in _items(client, conv.id)] == ["message", "function_call", "function_call_output",
                                                           "message"]
    assert len(upstream.requests[-1]["messages"][-2]["tool_calls"]) == 1
    dup = {"type": "message", "id": "msg_twice", "role": "user", "content": "x"}
    r3 = _post(server, {"model": MODEL, "conversation": conv.id, "input": [dup, dup]})
    assert r3.status_code == 400 and r3.json()["error"]["code"] == "duplicate_item"


def test_conversation_deleted_while_a_response_runs(client: openai.OpenAI, server: Any,
                                                    upstream: FakeUpstream) -> None:
    conv = client.conversations.create(items=[{"role": "user", "content": "start"}])
    upstream.queue(text("slow answer here", delay=0.05))
    with httpx.stream("POST", server.url + "/v1/responses", timeout=30,
                      json={"model": MODEL, "input": "x", "conversation": conv.id, "stream": True}) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("event: response.created")
        client.conversations.delete(conv.id)
        rest = "\n".join(lines)
    assert "event: response.completed" in rest
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.list(conv.id)


def test_context_reads_only_this_conversations_rows(tmp_path: Any) -> None:
    """Every statement the store runs for a context or a page is an index search, never a scan."""
    from sqlalchemy import event

    from rejoinder.store.conversations import ConversationStore
    from rejoinder.store.db import Database
    from rejoinder.store.migrations import migrate
    from rejoinder.store.sqlite_driver import SQLITE as sqlite3  # the store's library
    from rejoinder.tenant import Tenant

    owner = Tenant("o")
    path = tmp_path / "plan.db"
    statements: list[tuple[str, Any]] = []

    async def run() -> None:
        db = Database(f"sqlite:///{path}")
        await migrate(db)
        store = ConversationStore(db)
        for n in range(3):
            await store.create(f"conv_{n}", owner, {}, [{"type": "message", "id": f"m{n}_{i}", "role": "user",
                                                      "content": []} for i in range(20)])

        @event.listens_for(db.sync_engine, "before_cursor_execute")
        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                statements.append((statement, parameters))

        assert [i["id"] for i in await store.context_items("conv_1", owner) or []] == [f"m1_{i}" for i in range(20)]
        page = await store.list_items("conv_1", owner, "m1_5", 3, "desc")
        assert [i["id"] for i in page.data] == ["m1_4", "m1_3", "m1_2"]
        await store.get_item("conv_1", owner, "m1_7")
        await db.dispose()

    asyncio.run(run())
    assert len(statements) >= 6
    with sqlite3.connect(path) as conn:
        for sql, params in statements:
            plan = " | ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
            assert "SCAN" not in plan.replace("SCAN CONSTANT ROW", ""), (sql, plan)
            assert "SEARCH" in plan, (sql, plan)


def test_conversation_items_validate_and_survive_json(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    """Output items carry JSON arguments as strings, exactly as streamed."""
    conv = client.conversations.create()
    upstream.queue(calls(("get_user_id", {"username": "charlie"})))
    client.responses.create(model=MODEL, input="who?", tools=FUNCTION_TOOLS,  # type: ignore[arg-type]
                            conversation=conv.id)
    call = _items(client, conv.id)[1]
    assert call["type"] == "function_call" and json.loads(call["arguments"]) == {"username": "charlie"}
