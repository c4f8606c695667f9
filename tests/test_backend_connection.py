"""The upstream call ends at ``[DONE]``; the connection is still reused once its body has ended."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rejoinder.backends.openai_compat import OpenAICompatBackend
from rejoinder.errors import BackendError
from tests.fake_upstream import FakeUpstream, Turn, text

BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def _text_of(backend: OpenAICompatBackend) -> str:
    out = ""
    async for chunks in backend.stream(BODY):
        for chunk in chunks:
            for choice in chunk.get("choices") or []:
                out += choice["delta"].get("content") or ""
    return out


async def _drained(backend: Any) -> None:
    await asyncio.gather(*backend._drains)


def test_the_answer_does_not_wait_for_the_body_to_end(upstream: FakeUpstream) -> None:
    upstream.queue(text("done early", linger=60))

    async def run() -> None:
        backend = OpenAICompatBackend(upstream.url + "/v1", None)  # type: ignore[attr-defined]
        try:
            # Waiting for the body's end would take the whole minute.
            assert await asyncio.wait_for(_text_of(backend), 20) == "done early"
            assert len(backend._drains) == 1  # the rest of the body is read in the background
        finally:
            await asyncio.wait_for(backend.aclose(), 5)  # and an idle server does not hold up shutdown
        assert not backend._drains

    asyncio.run(run())


def test_the_connection_is_reused_after_a_lingering_body(upstream: FakeUpstream) -> None:
    upstream.queue(text("first", linger=0.2), text("second"), text("third"))

    async def run() -> None:
        backend = OpenAICompatBackend(upstream.url + "/v1", None)  # type: ignore[attr-defined]
        try:
            assert await _text_of(backend) == "first"
            await asyncio.wait_for(_drained(backend), 10)
            assert await _text_of(backend) == "second"
            assert await _text_of(backend) == "third"
        finally:
            await backend.aclose()

    asyncio.run(run())
    assert len(upstream.peers) == 3 and len(set(upstream.peers)) == 1, upstream.peers


def test_chunks_that_arrived_with_a_break_are_kept(upstream: FakeUpstream) -> None:
    """aiohttp raises a broken body's error before it hands out the bytes that came ahead of it:
    when the reader was busy while both arrived, those chunks must still reach the answer."""
    upstream.queue(Turn(text="partial answer that breaks", break_after=3))

    async def run() -> None:
        backend = OpenAICompatBackend(upstream.url + "/v1", None)  # type: ignore[attr-defined]
        out = ""
        try:
            stream = backend.stream(BODY)
            assert await anext(stream) == []  # accepted: the body comes next
            # Busy elsewhere while the chunks and the break both arrive.
            await asyncio.to_thread(lambda: upstream.broken.wait(10))
            await asyncio.sleep(0.2)
            with pytest.raises(BackendError):
                async for chunks in stream:
                    out += "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        finally:
            await backend.aclose()
        assert out == "partial answer "

    asyncio.run(run())
