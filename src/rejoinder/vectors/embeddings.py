"""Embedding models: a configured backend's ``/v1/embeddings``, or the embedded MiniLM (offline).

A vector store remembers the model that embedded it; its queries are embedded by the same one.
Vectors are unit length, so cosine distance ranks them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import httpx

from rejoinder.config import Settings
from rejoinder.errors import InvalidRequest
from rejoinder.vectors import minilm

log = logging.getLogger(__name__)

WINDOW_TOKENS = 254  # MiniLM reads 256 word pieces (CLS and SEP included), as sentence-transformers cuts


class EmbeddingError(Exception):
    """The embedding model failed; the ingestion retries, a search answers 502/503."""


class Embedder(Protocol):
    name: str

    async def embed(self, texts: list[str]) -> list[list[float]]: ...

    async def aclose(self) -> None: ...


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class BackendEmbedder:
    """``POST {base_url}/embeddings`` on an OpenAI-compatible server (vLLM, Ollama, OpenAI...)."""

    def __init__(self, name: str, base_url: str, api_key: str | None, upstream: str, dimensions: int | None,
                 batch_size: int, timeout: float):
        self.name = name
        self.upstream = upstream
        self.dimensions = dimensions
        self.batch_size = batch_size
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            out.extend(await self._request(texts[start:start + self.batch_size]))
        return out

    async def _request(self, texts: list[str]) -> list[list[float]]:
        body: dict[str, Any] = {"model": self.upstream, "input": texts, "encoding_format": "float"}
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        try:
            reply = await self.client.post("embeddings", json=body)
        except httpx.HTTPError as exc:
            raise EmbeddingError(f"the embeddings backend for {self.name} is unreachable: {exc!r}") from None
        if reply.status_code != 200:
            raise EmbeddingError(f"the embeddings backend for {self.name} answered {reply.status_code}: "
                                 f"{reply.text[:300]}")
        try:
            data = sorted(reply.json()["data"], key=lambda d: d["index"])
            vectors = [_unit([float(v) for v in d["embedding"]]) for d in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(f"the embeddings backend for {self.name} sent a malformed reply: {exc!r}") from None
        if len(vectors) != len(texts):
            raise EmbeddingError(f"the embeddings backend for {self.name} sent {len(vectors)} vectors "
                                 f"for {len(texts)} inputs")
        return vectors

    async def aclose(self) -> None:
        await self.client.aclose()


class EmbeddedEmbedder:
    """all-MiniLM-L6-v2 in-process. One llama.cpp context, used by one thread at a time, off the
    event loop. A text longer than the model reads is embedded as the mean of its windows, so the
    end of a long chunk counts as much as its start."""

    def __init__(self, data_dir: Path, threads: int | None):
        self.name = minilm.MODEL_NAME
        self.data_dir = data_dir
        self.threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            from llama_cpp import Llama

            path = minilm.gguf_path(self.data_dir)
            # llama-cpp-python's default batch threads is every core, which on a busy machine
            # (the chat model, the event loop) made an embedding 5x slower than one thread.
            threads = self.threads or max(1, (os.cpu_count() or 2) // 2)
            self._model = Llama(str(path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512,
                                n_threads=threads, n_threads_batch=threads, verbose=False)
        return self._model

    def _embed_sync(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            model = self._load()
            out = []
            for text in texts:
                pieces = model.tokenize(text.encode("utf-8"), add_bos=False, special=False)
                windows = [model.detokenize(pieces[i:i + WINDOW_TOKENS]).decode("utf-8", "ignore")
                           for i in range(0, len(pieces), WINDOW_TOKENS)] or [""]
                vectors = model.embed(windows, normalize=True)
                mean = [sum(column) / len(vectors) for column in zip(*vectors, strict=True)]
                out.append(_unit(mean))
            return out

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._embed_sync, texts)

    async def aclose(self) -> None:
        self._model = None


class Embedders:
    """The model new vector stores use (``embeddings.model`` or the embedded one), and any other
    configured model an older store was embedded with."""

    def __init__(self, settings: Settings):
        self.settings = settings
        config = settings.embeddings
        if config.model is not None and config.model not in settings.models:
            raise ValueError(f"embeddings.model '{config.model}' is not a configured model; configure it under "
                             f"models (a backend that serves /v1/embeddings) or unset it to use "
                             f"the embedded {minilm.MODEL_NAME}")
        self.default = config.model or minilm.MODEL_NAME
        self._made: dict[str, Embedder] = {}

    def get(self, name: str) -> Embedder:
        if name in self._made:
            return self._made[name]
        if name == minilm.MODEL_NAME and name not in self.settings.models:
            made: Embedder = EmbeddedEmbedder(self.settings.data_dir, self.settings.embeddings.threads)
        elif name in self.settings.models:
            backend = self.settings.models[name]
            made = BackendEmbedder(name, backend.base_url, backend.api_key, backend.model or name,
                                   self.settings.embeddings.dimensions, self.settings.embeddings.batch_size,
                                   backend.timeout)
        else:
            raise InvalidRequest(f"This vector store was embedded with the model '{name}', which this server no "
                                 "longer serves.", code="model_not_found")
        self._made[name] = made
        return made

    def unavailable_reason(self) -> str | None:
        if self.default == minilm.MODEL_NAME and minilm.packaged_zip() is None \
                and not (self.settings.data_dir / "models" / minilm.GGUF_NAME).is_file():
            return f"the embedded embedding model is not installed ({minilm.INSTALL_HINT})"
        return None

    async def aclose(self) -> None:
        for embedder in self._made.values():
            await embedder.aclose()
