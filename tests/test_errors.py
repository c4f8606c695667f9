"""Every bad input is a 4xx in OpenAI's error shape; nothing already stored is harmed."""

import json

import httpx
import pytest

from tests.conftest import MODEL


def _err(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in body["error"]["message"]
    return body["error"]


def post(server, body=None, content=None, headers=None):
    return httpx.post(f"{server.url}/v1/responses", json=body, content=content, headers=headers, timeout=30)


def test_malformed_json(server):
    e = _err(post(server, content=b'{"model": ', headers={"content-type": "application/json"}), 400)
    assert e["type"] == "invalid_request_error" and "JSON" in e["message"]
    _err(post(server, content=b"", headers={"content-type": "application/json"}), 400)
    _err(post(server, content=b"[1, 2]", headers={"content-type": "application/json"}), 400)


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"input": "hi"}, "model", "missing_required_parameter"),
    ({"model": MODEL}, "input", "missing_required_parameter"),
    ({"model": 5, "input": "hi"}, "model", "invalid_type"),
    ({"model": MODEL, "input": 5}, "input", None),
    ({"model": MODEL, "input": "hi", "temperature": "hot"}, "temperature", "invalid_type"),
    ({"model": MODEL, "input": "hi", "temperature": 3}, "temperature", "invalid_value"),
    ({"model": MODEL, "input": "hi", "top_p": -1}, "top_p", "invalid_value"),
    ({"model": MODEL, "input": "hi", "max_output_tokens": 3}, "max_output_tokens", "invalid_value"),
    ({"model": MODEL, "input": "hi", "store": "yes"}, "store", "invalid_type"),
    ({"model": MODEL, "input": "hi", "bogus": 1}, "bogus", "unknown_parameter"),
    ({"model": MODEL, "input": "hi", "prompt": {"id": "p"}}, "prompt", "unsupported_parameter"),
    ({"model": MODEL, "input": "hi", "top_logprobs": 21}, "top_logprobs", "invalid_value"),
    ({"model": MODEL, "input": "hi", "include": ["message.bogus"]}, "include[0]", "invalid_value"),
    ({"model": MODEL, "input": "hi", "service_tier": "flex"}, "service_tier", "unsupported_value"),
    ({"model": MODEL, "input": "hi", "tools": [{"type": "code_interpreter", "container": "x"}]}, "tools[0].type",
     "unsupported_value"),
    ({"model": MODEL, "input": "hi", "tools": [{"type": "function"}]}, "tools[0].name",
     "missing_required_parameter"),
    ({"model": MODEL, "input": "hi", "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
    ({"model": MODEL, "input": "hi", "tools": [{"type": "mcp", "server_label": "s", "server_url": "http://[::1"}]},
     "tools[0].server_url", "invalid_value"),
    ({"model": MODEL, "input": "hi", "tools": [{"type": "mcp", "server_label": "s", "server_url": "https:///mcp"}]},
     "tools[0].server_url", "invalid_value"),
    ({"model": MODEL, "input": [{"type": "bogus"}]}, "input[0].type", "invalid_value"),
    ({"model": MODEL, "input": [{"role": "robot", "content": "x"}]}, "input[0].role", "invalid_value"),
    ({"model": MODEL, "input": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]},
     "input[0].content[0].type", "invalid_value"),
    ({"model": MODEL, "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id",
     "missing_required_parameter"),
    ({"model": MODEL, "input": "hi", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata",
     "object_above_max_properties"),
    ({"model": MODEL, "input": "hi", "metadata": {"k": "v" * 513}}, "metadata.k", "string_above_max_length"),
    ({"model": MODEL, "input": "hi", "metadata": {"k" * 65: "v"}}, "metadata", "invalid_metadata"),
    ({"model": MODEL, "input": "hi", "metadata": {"k": 1}}, "metadata.k", "invalid_type"),
    ({"model": MODEL, "input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type", "invalid_value"),
    ({"model": MODEL, "input": "hi", "text": {"format": {"type": "json_schema", "name": "bad name!",
                                                         "schema": {}}}}, "text.format.name", "invalid_value"),
    ({"model": MODEL, "input": "hi", "text": {"format": {"type": "json_schema", "name": "s",
                                                         "schema": {"type": "nonsense"}}}},
     "text.format.schema", "invalid_json_schema"),
    ({"model": MODEL, "input": "hi", "text": {"format": {"type": "json_schema", "name": "s", "strict": True,
                                                         "schema": {"type": "object",
                                                                    "properties": {"a": {"type": "string"}}}}}},
     "text.format.schema", "invalid_json_schema"),
    ({"model": MODEL, "input": "hi", "previous_response_id": "resp_x", "conversation": "conv_x"},
     "previous_response_id", "mutually_exclusive_parameters"),
    ({"model": MODEL, "input": [{"type": "function_call_output", "call_id": "call_nope", "output": "x"}]},
     "input", "invalid_function_call_output"),
    ({"model": MODEL, "input": [{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}]},
     "input", "missing_function_call_output"),
    ({"model": MODEL, "input": [{"type": "item_reference", "id": "msg_nope"}]}, "input[0].id", "item_not_found"),
    # Ids a client gives must fit the id columns and hold no NUL (on PostgreSQL either failed the write).
    ({"model": MODEL, "input": [{"role": "user", "content": "x", "id": "msg_" + "x" * 200}]}, "input[0].id",
     "string_above_max_length"),
    ({"model": MODEL, "input": [{"role": "user", "content": "x", "id": "msg_\x00"}]}, "input[0].id", "invalid_value"),
    ({"model": MODEL, "input": [{"role": "user", "content": "x", "id": [1]}]}, "input[0].id", "invalid_type"),
    ({"model": MODEL, "input": "hi", "previous_response_id": "resp_\x00"}, "previous_response_id", "invalid_value"),
    ({"model": MODEL, "input": "hi", "conversation": {"id": "conv_\x00"}}, "conversation", "invalid_value"),
    # Each content part is checked against its own type, and the error names its field.
    ({"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/a.png",
                                                              "detail": "ultra"}]}]},
     "input[0].content[0].detail", "invalid_value"),
    ({"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]},
     "input[0].content[0].text", "invalid_type"),
    # text is checked against the SDK's types too (a non-boolean strict was stored, then failed the stream).
    ({"model": MODEL, "input": "hi", "text": {"verbosity": "extreme"}}, "text.verbosity", "invalid_value"),
    ({"model": MODEL, "input": "hi", "text": {"format": {"type": "json_schema", "name": "s", "strict": "yes",
                                                         "schema": {"type": "object"}}}},
     "text.format.strict", "invalid_type"),
    ({"model": MODEL, "input": "hi", "text": {"format": {"type": {}}}}, "text.format.type", "invalid_value"),
    # A role or part type that is not a string (it was looked up in a set: a 500).
    ({"model": MODEL, "input": [{"role": ["user"], "content": "x"}]}, "input[0].role", "invalid_value"),
    ({"model": MODEL, "input": [{"role": "user", "content": [{"type": {}}]}]}, "input[0].content[0].type",
     "invalid_value"),
])
def test_bad_input_is_400(server, body, param, code):
    e = _err(post(server, body), 400)
    assert e["param"] == param
    if code:
        assert e["code"] == code
    assert e["type"] == "invalid_request_error"


def test_unknown_model(server):
    e = _err(post(server, {"model": "nope", "input": "hi"}), 404)
    assert e["param"] == "model" and e["code"] == "model_not_found" and "nope" in e["message"]


def test_unknown_previous_response(server):
    e = _err(post(server, {"model": MODEL, "input": "hi", "previous_response_id": "resp_missing"}), 404)
    assert e["param"] == "previous_response_id"


def test_unknown_ids(server):
    _err(httpx.get(f"{server.url}/v1/responses/resp_missing"), 404)
    _err(httpx.delete(f"{server.url}/v1/responses/resp_missing"), 404)
    _err(httpx.get(f"{server.url}/v1/responses/resp_missing/input_items"), 404)


def test_client_ids_are_checked_before_they_reach_the_store(server, client):
    """Found by fuzzing on PostgreSQL: an over-long or NUL-holding id failed the write there (a 500,
    or a turn stored as failed); a NUL in a URL failed the query."""
    conv = client.conversations.create()
    items = f"{server.url}/v1/conversations/{conv.id}/items"
    e = _err(httpx.post(items, json={"items": [{"role": "user", "content": "x", "id": "m" * 121}]}), 400)
    assert e["param"] == "items[0].id" and e["code"] == "string_above_max_length"
    assert _err(httpx.post(items, json={"items": [{"role": "user", "content": "x", "id": "m\x00"}]}), 400)["param"] \
        == "items[0].id"
    fits = "msg_" + "y" * 116
    assert httpx.post(items, json={"items": [{"role": "user", "content": "x", "id": fits}]}).status_code == 200
    for url in (f"{server.url}/v1/responses/resp_%00", f"{server.url}/v1/conversations/{conv.id}/items/msg_%00",
                f"{items}?after=msg_%00"):
        assert _err(httpx.get(url), 400)["code"] == "invalid_value"
    assert _err(httpx.delete(f"{server.url}/v1/conversations/conv_%00"), 400)["code"] == "invalid_value"
    assert [i.id for i in client.conversations.items.list(conv.id)] == [fits]  # nothing else stored


def _schema(levels: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def test_a_body_nested_too_deep_is_a_400(server, client):
    """Found by fuzzing: a schema 60 levels deep broke JSON Schema's recursion, 127 broke orjson's
    writer (a 500), and 450 reset the connection."""
    schema = {"type": "json_schema", "name": "s", "schema": _schema(20)}  # 42 levels in the body: fine
    r = client.responses.create(model=MODEL, input="hi", text={"format": schema})
    assert client.responses.retrieve(r.id).text.format.schema_ == schema["schema"]
    for levels in (40, 450, 2000):  # as text: Python's own encoder stops at ~1000 levels
        nested = '{"type":"object","properties":{"a":' * levels + '{"type":"string"}' + "}}" * levels
        body = json.dumps({"model": MODEL, "input": "hi", "text": {"format": {**schema, "schema": "@"}}})
        body = body.replace('"@"', nested)
        assert levels > 400 or json.loads(body)["text"]["format"]["schema"]["properties"]  # well-formed
        assert "64 levels" in _err(post(server, content=body.encode(),
                                        headers={"content-type": "application/json"}), 400)["message"]
    deep: list = ["x"]
    for _ in range(100):
        deep = [deep]
    e = _err(httpx.post(f"{server.url}/v1/conversations", json={"items": [{"role": "user", "content": "x",
                                                                            "extra": deep}]}), 400)
    assert e["code"] == "invalid_value"


def test_bad_query_parameters(server, client):
    r = client.responses.create(model=MODEL, input="hi")
    _err(httpx.get(f"{server.url}/v1/responses/{r.id}/input_items", params={"limit": 0}), 400)
    _err(httpx.get(f"{server.url}/v1/responses/{r.id}/input_items", params={"limit": 101}), 400)
    _err(httpx.get(f"{server.url}/v1/responses/{r.id}/input_items", params={"order": "up"}), 400)
    _err(httpx.get(f"{server.url}/v1/responses/{r.id}/input_items", params={"after": "msg_zzz"}), 400)
    _err(httpx.get(f"{server.url}/v1/responses", params={"limit": "many"}), 400)
    _err(httpx.get(f"{server.url}/v1/nothing-here"), 404)
    _err(httpx.put(f"{server.url}/v1/responses"), 404)  # an unknown method is an unknown URL, as OpenAI
    assert client.responses.retrieve(r.id).status == "completed"  # still intact


def test_errors_leave_stored_state_intact(server, client, upstream):
    r = client.responses.create(model=MODEL, input="keep me")
    post(server, {"model": MODEL, "input": [{"type": "bogus"}], "previous_response_id": r.id})
    post(server, {"model": MODEL, "input": "x", "previous_response_id": r.id, "temperature": 9})
    assert client.responses.retrieve(r.id).output_text == "echo: keep me"
    assert [i.id for i in client.responses.input_items.list(r.id)] == [
        i.id for i in client.responses.input_items.list(r.id)]


def test_body_over_the_limit_is_a_413(make_server):
    server = make_server(max_body_bytes=1500)
    e = _err(post(server, {"model": MODEL, "input": "x" * 2000}), 413)
    assert e["code"] == "request_too_large"
    assert post(server, {"model": MODEL, "input": "hi"}).json()["status"] == "completed"


def test_an_unexpected_error_is_one_log_line_and_a_500_that_keeps_the_connection(server, client, monkeypatch, caplog):
    from rejoinder.store.responses import ResponseStore

    r = client.responses.create(model=MODEL, input="hi")

    async def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(ResponseStore, "get", broken)
    with httpx.Client(base_url=server.url) as http:
        failed = http.get(f"/v1/responses/{r.id}")
        e = _err(failed, 500)
        assert e["type"] == "server_error" and "a bug" not in e["message"]
        monkeypatch.undo()
        ok = http.get(f"/v1/responses/{r.id}")
        assert ok.status_code == 200
        # the same connection served both: uvicorn closed it after the error before
        ports = [resp.extensions["network_stream"].get_extra_info("client_addr")[1] for resp in (failed, ok)]
        assert ports[0] == ports[1]
    tracebacks = [rec for rec in caplog.records if rec.exc_info]
    assert len(tracebacks) == 1 and tracebacks[0].name == "rejoinder.http.errors"


def test_the_id_limit_is_the_id_columns_length():
    from rejoinder.api.items import MAX_ID_LENGTH
    from rejoinder.store.schema import conversation_items, response_items

    assert MAX_ID_LENGTH == response_items.c.item_id.type.length == conversation_items.c.item_id.type.length
