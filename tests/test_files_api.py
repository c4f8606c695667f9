"""The Files API through the openai SDK: uploads streamed in parts, the size limit while streaming,
list/retrieve/content/delete, purposes and expiry, and tenancy."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types import FileDeleted, FileObject
from sqlalchemy import text

from rejoinder.store.db import Database
from tests.procs import query


def execute(storage_url: str, sql: str) -> None:
    """Change the servers' database behind their back, as an operator (or time) would."""
    async def run() -> None:
        db = Database(storage_url)
        try:
            await db.write(lambda conn: conn.execute(text(sql)))
        finally:
            await db.dispose()

    asyncio.run(run())


@pytest.fixture
def keyed(make_server: Any) -> Any:
    return make_server(api_keys={"key-alice": "alice", "key-bob": "bob"}, files={"part_bytes": 65536})


def _client(server: Any, key: str = "key-alice") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=60)


def _parts(server: Any) -> int:
    url = server.server.config.app.state.settings.storage_url
    return query(url, "SELECT COUNT(*) FROM file_parts")[0][0]


def test_upload_round_trip_is_byte_exact_across_parts(keyed: Any) -> None:
    alice = _client(keyed)
    data = os.urandom(200_000) + b"\x00end"  # four 64 KiB parts
    created = alice.files.create(file=("data.bin", data), purpose="user_data")
    FileObject.model_validate(created.model_dump())
    assert (created.object, created.bytes, created.filename, created.purpose, created.status) == (
        "file", len(data), "data.bin", "user_data", "processed")
    assert created.id.startswith("file-") and created.expires_at is None
    assert _parts(keyed) == 4
    assert alice.files.retrieve(created.id) == created
    assert alice.files.content(created.id).read() == data
    raw = httpx.get(f"{keyed.url}/v1/files/{created.id}/content", headers={"Authorization": "Bearer key-alice"})
    assert raw.headers["content-length"] == str(len(data))
    assert "data.bin" in raw.headers["content-disposition"]
    deleted = alice.files.delete(created.id)
    assert FileDeleted.model_validate(deleted.model_dump()) == FileDeleted(id=created.id, deleted=True, object="file")
    assert _parts(keyed) == 0
    with pytest.raises(openai.NotFoundError):
        alice.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        alice.files.content(created.id)
    with pytest.raises(openai.NotFoundError):
        alice.files.delete(created.id)


def test_an_empty_file_and_a_path_in_the_filename(keyed: Any) -> None:
    alice = _client(keyed)
    empty = alice.files.create(file=("dir/sub\\empty.txt", b""), purpose="assistants")
    assert (empty.bytes, empty.filename) == (0, "empty.txt")
    assert alice.files.content(empty.id).read() == b""


def test_list_pages_filters_and_orders(keyed: Any) -> None:
    alice = _client(keyed)
    made = [alice.files.create(file=(f"f{i}.txt", b"x"), purpose="batch" if i % 2 else "assistants").id
            for i in range(5)]
    page = alice.files.list(limit=2)
    assert [f.id for f in page.data] == made[::-1][:2] and page.has_more
    assert [f.id for f in alice.files.list(limit=2, after=made[3]).data] == [made[2], made[1]]
    assert [f.id for f in alice.files.list(order="asc").data] == made
    assert [f.id for f in alice.files.list(purpose="batch", order="asc").data] == [made[1], made[3]]
    assert [f.id for f in alice.files.list(order="asc")] == made  # the SDK's auto-pagination
    batch = alice.files.retrieve(made[1])
    assert batch.expires_at == batch.created_at + 30 * 86400  # batch files expire after 30 days
    for bad in ({"limit": 0}, {"limit": 10001}, {"order": "up"}):
        r = httpx.get(f"{keyed.url}/v1/files", params=bad, headers={"Authorization": "Bearer key-alice"})
        assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_purposes_and_form_fields_are_checked(keyed: Any) -> None:
    alice = _client(keyed)
    with pytest.raises(openai.BadRequestError) as bad:
        alice.files.create(file=("a.txt", b"x"), purpose="weights")  # type: ignore[arg-type]
    assert bad.value.body["param"] == "purpose" and bad.value.body["code"] == "invalid_value"
    headers = {"Authorization": "Bearer key-alice"}
    missing = httpx.post(f"{keyed.url}/v1/files", files={"file": ("a.txt", b"x")}, headers=headers)
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "purpose"
    no_file = httpx.post(f"{keyed.url}/v1/files", data={"purpose": "assistants"}, files={"x": ("", b"")},
                         headers=headers)
    assert no_file.status_code == 400
    unknown = httpx.post(f"{keyed.url}/v1/files", data={"purpose": "assistants", "colour": "red"},
                         files={"file": ("a.txt", b"x")}, headers=headers)
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_parameter"
    not_form = httpx.post(f"{keyed.url}/v1/files", json={"purpose": "assistants"}, headers=headers)
    assert not_form.status_code == 400 and not_form.json()["error"]["code"] == "invalid_content_type"
    cut = httpx.post(f"{keyed.url}/v1/files", content=b"--b\r\ncontent-disposition: form-data; name=\"file\"; "
                     b"filename=\"a.txt\"\r\n\r\nabc", headers={**headers, "content-type":
                                                               "multipart/form-data; boundary=b"})
    assert cut.status_code == 400 and cut.json()["error"]["code"] == "invalid_multipart"
    assert alice.files.list().data == [] and _parts(keyed) == 0


def test_expiry(keyed: Any) -> None:
    alice = _client(keyed)
    made = alice.files.create(file=("a.txt", b"x"), purpose="user_data",
                              expires_after={"anchor": "created_at", "seconds": 3600})
    assert made.expires_at == made.created_at + 3600
    with pytest.raises(openai.BadRequestError) as bad:
        alice.files.create(file=("a.txt", b"x"), purpose="user_data",
                           expires_after={"anchor": "created_at", "seconds": 60})
    assert bad.value.body["param"] == "expires_after.seconds"
    url = keyed.server.config.app.state.settings.storage_url
    execute(url, "UPDATE files SET expires_at = 1")  # as if its hour had passed
    with pytest.raises(openai.NotFoundError):
        alice.files.retrieve(made.id)
    assert alice.files.list().data == []


def test_another_principal_sees_nothing(keyed: Any) -> None:
    alice, bob = _client(keyed), _client(keyed, "key-bob")
    mine = alice.files.create(file=("secret.txt", b"alice's secret"), purpose="assistants")
    for call in (lambda: bob.files.retrieve(mine.id), lambda: bob.files.content(mine.id),
                 lambda: bob.files.delete(mine.id)):
        with pytest.raises(openai.NotFoundError) as foreign:
            call()
        assert mine.id in foreign.value.body["message"]
    assert bob.files.list().data == []
    with pytest.raises(openai.AuthenticationError):
        _client(keyed, "key-mallory").files.list()
    assert alice.files.content(mine.id).read() == b"alice's secret"


def _form(boundary: bytes, body: Iterator[bytes], purpose: bytes = b"assistants") -> Iterator[bytes]:
    yield b"--" + boundary + b'\r\ncontent-disposition: form-data; name="purpose"\r\n\r\n' + purpose + b"\r\n"
    yield b"--" + boundary + b'\r\ncontent-disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    yield from body
    yield b"\r\n--" + boundary + b"--\r\n"


def test_the_size_limit_is_enforced_while_streaming(make_server: Any) -> None:
    """A chunked upload (no content-length) is refused once it crosses the limit, before its end
    is sent; nothing it wrote is kept."""
    server = make_server(files={"max_bytes": 300_000, "part_bytes": 65536})
    sent_after_refusal = threading.Event()

    def body() -> Iterator[bytes]:
        for i in range(100):  # 6.4 MB offered, far past the limit
            yield os.urandom(65536)
            if i > 40:
                sent_after_refusal.set()

    r = httpx.post(f"{server.url}/v1/files", content=_form(b"xyz", body()),
                   headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    assert _parts(server) == 0 and query(server.server.config.app.state.settings.storage_url,
                                         "SELECT COUNT(*) FROM files")[0][0] == 0
    declared = httpx.post(f"{server.url}/v1/files", files={"file": ("a.bin", b"x" * 400_000)},
                          data={"purpose": "assistants"})
    assert declared.status_code == 413  # refused from its content-length, before reading it


def test_parts_are_stored_while_the_upload_is_still_arriving(make_server: Any) -> None:
    """The upload is written part by part as it arrives, not read whole first: the parts of the
    first megabyte are in the database before the client sends the rest."""
    server = make_server(files={"part_bytes": 65536})
    seen: list[int] = []

    def body() -> Iterator[bytes]:
        for _ in range(16):
            yield os.urandom(65536)
        deadline = time.monotonic() + 20
        while _parts(server) < 15 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.append(_parts(server))
        for _ in range(16):
            yield os.urandom(65536)

    r = httpx.post(f"{server.url}/v1/files", content=_form(b"b0", body()),
                   headers={"content-type": "multipart/form-data; boundary=b0"}, timeout=60)
    assert r.status_code == 200, r.text
    assert seen[0] >= 15 and r.json()["bytes"] == 32 * 65536 and _parts(server) == 32


def test_uploads_are_not_bound_by_the_json_body_limit(make_server: Any) -> None:
    """The request body limit is for JSON bodies; an upload streams past it under files.max_bytes."""
    server = make_server(max_body_bytes=1024 * 1024, files={"max_bytes": 4 * 1024 * 1024})
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    data = os.urandom(3 * 1024 * 1024)
    made = c.files.create(file=("big.bin", data), purpose="user_data")
    assert made.bytes == len(data) and c.files.content(made.id).read() == data
    too_big = httpx.post(f"{server.url}/v1/files", files={"file": ("a.bin", b"x" * (5 * 1024 * 1024))},
                         data={"purpose": "user_data"})
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "file_too_large"
    json_route = httpx.post(f"{server.url}/v1/vector_stores", json={"name": "x" * (2 * 1024 * 1024)})
    assert json_route.status_code == 413  # every other route keeps the body limit
