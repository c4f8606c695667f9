"""Record and replay upstream calls in llama-stack's recording format (see shared/recordings).

Lookup is by exact hash first (llama-stack's rule), then by a tolerant signature that ignores
generated ids and key order: same model, same message roles and texts, same tool calls and tool
names. A replay miss raises an error naming the hash and the closest recordings.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from rejoinder.backends.base import NOT_ADMITTED, Admission, ChatBackend
from rejoinder.backends.chunk import Chunk, MalformedChunk, chunk_from_python
from rejoinder.errors import BackendError

log = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"

_FLOAT_IN_STRING = re.compile(r"(-?\d+\.\d{4,})")


def _normalize(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalize(v) for v in value]
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, str):
        return _FLOAT_IN_STRING.sub(lambda m: f"{float(m.group(0)):.5f}", value)
    return value


def request_hash(body: dict[str, Any], test_id: str | None, endpoint: str = ENDPOINT) -> str:
    key: dict[str, Any] = {"method": "POST", "endpoint": endpoint, "body": _normalize(body)}
    if endpoint != "/v1/models":
        key["test_id"] = test_id
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return content or ""


def _canonical_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def signature(body: dict[str, Any]) -> str:
    """What a request means, without ids: the key of the tolerant lookup."""
    messages = []
    for m in body.get("messages", []):
        calls = [
            [c.get("function", {}).get("name"), _canonical_json(c.get("function", {}).get("arguments", ""))]
            for c in m.get("tool_calls") or []
        ]
        messages.append([m.get("role"), _text_of(m.get("content")).strip(), calls])
    tools = sorted(t.get("function", {}).get("name", "") for t in body.get("tools") or [])
    return json.dumps({"model": body.get("model"), "messages": messages, "tools": tools}, sort_keys=True)


class RecordingMissing(BackendError):
    def __init__(self, message: str):
        super().__init__(message, "server_error")


class RecordingStore:
    """The recordings directory, indexed by hash and by tolerant signature."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._by_signature: dict[str, list[Path]] | None = None

    def _index(self) -> dict[str, list[Path]]:
        if self._by_signature is None:
            index: dict[str, list[Path]] = {}
            for path in sorted(self.directory.rglob("*.json")) if self.directory.exists() else []:
                try:
                    data = json.loads(path.read_text())
                    body = data["request"]["body"]
                except (ValueError, KeyError, TypeError):
                    continue
                index.setdefault(signature(body), []).append(path)
            self._by_signature = index
        return self._by_signature

    def find(self, body: dict[str, Any], test_id: str | None) -> tuple[dict[str, Any], str] | None:
        digest = request_hash(body, test_id)
        exact = self.directory / f"{digest}.json"
        if exact.exists():
            return json.loads(exact.read_text()), "exact-hash"
        candidates = self._index().get(signature(body), [])
        if candidates:
            loaded = [json.loads(p.read_text()) for p in candidates]
            same_test = [d for d in loaded if d.get("test_id") == test_id]
            return (same_test or loaded)[0], "tolerant"
        return None

    def closest(self, body: dict[str, Any], n: int = 3) -> list[str]:
        wanted = signature(body)
        scored: list[tuple[float, str]] = []
        for sig, paths in self._index().items():
            ratio = difflib.SequenceMatcher(None, wanted, sig).quick_ratio()
            scored.extend((ratio, p.name) for p in paths)
        scored.sort(reverse=True)
        return [f"{name} ({ratio:.2f})" for ratio, name in scored[:n]]

    def write(self, body: dict[str, Any], test_id: str | None, url: str, chunks: list[Chunk]) -> Path:
        digest = request_hash(body, test_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        recorded = []
        for chunk in chunks:
            data = {**chunk, "id": f"rec-{digest[:12]}", "created": 0}
            recorded.append({"__type__": "openai.types.chat.chat_completion_chunk.ChatCompletionChunk",
                             "__data__": data})
        path = self.directory / f"{digest}.json"
        path.write_text(
            json.dumps(
                {
                    "test_id": test_id,
                    "request": {"method": "POST", "url": url, "headers": {}, "body": body, "endpoint": ENDPOINT,
                                "model": body.get("model")},
                    "response": {"body": recorded, "is_streaming": True},
                    "id_normalization_mapping": {},
                },
                indent=2,
            )
            + "\n"
        )
        self._by_signature = None
        return path


def _chunks_of(recording: dict[str, Any]) -> list[Chunk]:
    mapping = recording.get("id_normalization_mapping") or {}
    body = recording["response"]["body"]
    if mapping:
        text = json.dumps(body)
        for normalized, original in mapping.items():
            text = text.replace(original, normalized)
        body = json.loads(text)
    if not isinstance(body, list):
        body = [body]
    try:
        return [chunk_from_python(entry["__data__"]) for entry in body]
    except MalformedChunk as exc:
        raise BackendError(f"A recording holds a malformed chunk: {exc}", "server_error") from None


class RecordingBackend:
    """Wraps a backend (or none, in replay mode) with record / replay / record-if-missing."""

    def __init__(self, inner: ChatBackend | None, mode: str, directory: Path, url: str = ""):
        self.inner = inner
        self.mode = mode
        self.store = RecordingStore(directory)
        self.url = url
        self.last_match: str | None = None

    async def stream(self, body: dict[str, Any], admission: Admission = NOT_ADMITTED) -> AsyncIterator[list[Chunk]]:
        test_id = admission.test_id
        if self.mode in ("replay", "record-if-missing"):
            found = self.store.find(body, test_id)
            if found is not None:
                recording, rule = found
                self.last_match = rule
                log.debug("replaying recording (%s match)", rule)
                yield _chunks_of(recording)  # a replay arrives at once
                return
            if self.mode == "replay":
                raise RecordingMissing(
                    f"No recording for request hash {request_hash(body, test_id)} (test_id={test_id!r}); "
                    f"closest recordings: {', '.join(self.store.closest(body)) or 'none'}. "
                    "Re-run in record mode to create it."
                )
        if self.inner is None:
            raise BackendError("No upstream backend to record from.", "server_error")
        chunks: list[Chunk] = []
        async for batch in self.inner.stream(body, admission):
            chunks.extend(batch)
            yield batch
        self.store.write(body, test_id, self.url, chunks)

    async def aclose(self) -> None:
        if self.inner is not None:
            await self.inner.aclose()
