"""Record/replay of upstream calls in llama-stack's format."""

import json
import shutil
from pathlib import Path

import httpx
import openai

from rejoinder.backends.recorder import request_hash
from tests.conftest import MODEL
from tests.fake_upstream import calls, text
from tests.helpers import check_stream, sse_events

SHARED = Path(__file__).resolve().parents[2] / "shared" / "recordings"
TEST_ID = "tests/test_recorder.py::roundtrip"


def _client(server, test_id=TEST_ID):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0,
                         default_headers={"X-Rejoinder-Test-Id": test_id})


def test_record_then_replay_offline(make_server, upstream, tmp_path):
    rec_dir = tmp_path / "recs"
    recording = make_server(recording={"mode": "record", "dir": rec_dir})
    upstream.queue(text("recorded answer"), calls(("lookup", {"q": "x"})))
    first = _client(recording).responses.create(model=MODEL, input="question")
    files = list(rec_dir.glob("*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert files[0].stem == request_hash(data["request"]["body"], TEST_ID)
    assert data["test_id"] == TEST_ID and data["request"]["headers"] == {}
    assert data["response"]["is_streaming"] is True
    assert all(c["__data__"]["id"].startswith("rec-") for c in data["response"]["body"])
    assert "upstream-key" not in files[0].read_text()  # credentials are never recorded

    # replay with the upstream unreachable: same answer, no upstream call
    replay = make_server(recording={"mode": "replay", "dir": rec_dir},
                         models={MODEL: {"base_url": "http://127.0.0.1:9/v1"}})
    before = len(upstream.requests)
    again = _client(replay).responses.create(model=MODEL, input="question")
    assert again.output_text == first.output_text == "recorded answer"
    assert len(upstream.requests) == before


def test_replay_miss_names_hash_and_closest(make_server, upstream, tmp_path):
    rec_dir = tmp_path / "recs"
    _client(make_server(recording={"mode": "record", "dir": rec_dir})).responses.create(model=MODEL, input="abc")
    replay = make_server(recording={"mode": "replay", "dir": rec_dir})
    r = _client(replay, "other::test").responses.create(model=MODEL, input="something else entirely")
    assert r.status == "failed"
    assert "No recording for request hash" in r.error.message
    assert "closest recordings" in r.error.message and ".json" in r.error.message


def test_tolerant_lookup_ignores_test_id_and_ids(make_server, upstream, tmp_path):
    rec_dir = tmp_path / "recs"
    _client(make_server(recording={"mode": "record", "dir": rec_dir})).responses.create(
        model=MODEL, input="stable question")
    replay = make_server(recording={"mode": "replay", "dir": rec_dir})
    r = _client(replay, "a::different_test").responses.create(model=MODEL, input="stable question")
    assert r.output_text == "echo: stable question"


def test_record_if_missing(make_server, upstream, tmp_path):
    rec_dir = tmp_path / "recs"
    srv = make_server(recording={"mode": "record-if-missing", "dir": rec_dir})
    c = _client(srv)
    c.responses.create(model=MODEL, input="once")
    n = len(upstream.requests)
    c.responses.create(model=MODEL, input="once")
    assert len(upstream.requests) == n  # served from the recording
    assert len(list(rec_dir.glob("*.json"))) == 1


def test_shared_llama_stack_recording_replays(make_server, tmp_path):
    """The real gpt-4o recording: the first step of the get_user_id workflow, as a function call."""
    rec_dir = tmp_path / "recs"
    rec_dir.mkdir()
    src = SHARED / "example-gpt-4o-streaming-tool-call.json"
    shutil.copy(src, rec_dir / src.name)
    recorded = json.loads(src.read_text())
    body = recorded["request"]["body"]
    srv = make_server(recording={"mode": "replay", "dir": rec_dir},
                      models={"gpt-4o": {"base_url": "http://127.0.0.1:9/v1"}})
    tools = [{"type": "function", "name": t["function"]["name"], "description": t["function"]["description"],
              "parameters": t["function"]["parameters"]} for t in body["tools"]]
    resp = httpx.post(f"{srv.url}/v1/responses", headers={"X-Rejoinder-Test-Id": recorded["test_id"]},
                      json={"model": "gpt-4o", "input": body["messages"][0]["content"], "tools": tools},
                      timeout=30).json()
    assert resp.get("status") == "completed", resp
    [call] = resp["output"]
    assert call["type"] == "function_call" and call["name"] == "get_user_id"
    assert json.loads(call["arguments"]) == {"username": "charlie"}
    assert call["call_id"] == "call_mEjLRxcZhRdCdW0Ibeu6Pkju"
    assert resp["usage"]["input_tokens"] == 449 and resp["usage"]["output_tokens"] == 16

    # Streamed, the replay arrives at once: its six argument fragments make one delta event.
    events = sse_events(srv.url, {"model": "gpt-4o", "input": body["messages"][0]["content"], "tools": tools},
                        headers={"X-Rejoinder-Test-Id": recorded["test_id"]})
    final = check_stream(events)
    [delta] = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert delta["delta"] == final.output[0].arguments == '{"username":"charlie"}'  # type: ignore[union-attr]
