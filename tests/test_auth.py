"""Optional API keys: 401 without a valid key; another principal's ids look exactly like missing ones."""

import httpx
import openai
import pytest

from tests.conftest import MODEL


@pytest.fixture
def keyed(make_server):
    return make_server(api_keys={"key-alice": "alice", "key-bob": "bob"})


def _client(server, key):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def test_missing_or_wrong_key_is_401(keyed):
    r = httpx.post(f"{keyed.url}/v1/responses", json={"model": MODEL, "input": "hi"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    with pytest.raises(openai.AuthenticationError):
        _client(keyed, "key-mallory").responses.create(model=MODEL, input="hi")
    assert httpx.get(f"{keyed.url}/v1/models").status_code == 401
    assert httpx.get(f"{keyed.url}/health").status_code == 200  # probes need no key


def test_foreign_ids_are_404_everywhere(keyed, upstream):
    alice, bob = _client(keyed, "key-alice"), _client(keyed, "key-bob")
    mine = alice.responses.create(model=MODEL, input="alice's secret")
    with pytest.raises(openai.NotFoundError) as foreign:
        bob.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError) as missing:
        bob.responses.retrieve("resp_doesnotexist")
    assert foreign.value.body["message"].replace(mine.id, "X") == missing.value.body["message"].replace(
        "resp_doesnotexist", "X")
    with pytest.raises(openai.NotFoundError):
        bob.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.create(model=MODEL, input="hi", previous_response_id=mine.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.delete(mine.id)
    assert [r["id"] for r in httpx.get(f"{keyed.url}/v1/responses",
                                       headers={"Authorization": "Bearer key-bob"}).json()["data"]] == []
    # alice still has everything
    assert alice.responses.retrieve(mine.id).output_text == "echo: alice's secret"
    follow = alice.responses.create(model=MODEL, input="more", previous_response_id=mine.id)
    assert follow.status == "completed"
