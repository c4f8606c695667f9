"""Citation markers: search results reach the model numbered ``[1]``, ``[2]``...; the markers it
repeats in its answer become ``file_citation`` / ``url_citation`` annotations, and leave the text.

Numbers run over the whole context in item order (history, input, this response's output), so a
result keeps its number on every later turn and two searches never share one. Only a number that
names a result the model was shown becomes an annotation: anything else (``a[1]`` in code, a
number no search gave) stays text, and no citation is ever made up.

The answer streams: ``CitationStream`` strips markers from the deltas as they arrive, holding back
at most a short tail that may still turn into a marker, so the concatenated deltas are the final
text and every annotation index points into it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# ``[1]``, ``[1, 2]``, ``[^1]``, ``【1】``, ``【1†source】`` (OpenAI's own style), with the space before it.
_MARKER = re.compile(r"[ \t]*(?:\[\^?(\d{1,3}(?:\s*,\s*\^?\d{1,3})*)\]|【(\d{1,3})(?:[:†][^】\n]{0,40})?】)")
# A tail that may still grow into a marker: held back until the next delta decides.
_PARTIAL = re.compile(r"[ \t]*(?:\[\^?(?:\d{1,3}(?:\s*,\s*\^?\d{0,3})*)?\s*|【[^】\n]{0,44})?$")
_SENTENCE_END = re.compile(r"[.!?\n]\s*")


@dataclass(frozen=True)
class Source:
    """What a marker points at: a file chunk or a web page."""

    kind: str  # "file" | "url"
    file_id: str = ""
    filename: str = ""
    url: str = ""
    title: str = ""


@dataclass
class Sources:
    """Every source shown to the model in this context, by marker number (1-based)."""

    items: list[Source] = field(default_factory=list)
    seeded: bool = False  # the context's earlier results are numbered (tools/search_calls.py)

    def add(self, source: Source) -> int:
        self.items.append(source)
        return len(self.items)

    def get(self, number: int) -> Source | None:
        return self.items[number - 1] if 0 < number <= len(self.items) else None

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)


def annotation(source: Source, index: int, text: str) -> dict[str, Any]:
    """The annotation for a marker found at ``index`` of the clean ``text`` written so far.

    A ``url_citation`` spans the sentence the marker closes (OpenAI's spans the words it cites);
    a ``file_citation`` has only its position."""
    if source.kind == "file":
        return {"type": "file_citation", "file_id": source.file_id, "filename": source.filename, "index": index}
    start = 0
    for match in _SENTENCE_END.finditer(text, 0, max(index - 1, 0)):
        start = match.end()
    return {"type": "url_citation", "url": source.url, "title": source.title or source.url,
            "start_index": start, "end_index": index}


def _numbers(match: re.Match[str]) -> list[int]:
    raw = match.group(1) or match.group(2)
    return [int(n.strip().lstrip("^")) for n in raw.split(",")]


class CitationStream:
    """One output_text part's deltas, markers out, annotations collected."""

    def __init__(self, sources: Sources):
        self.sources = sources
        self.text = ""  # the clean text emitted so far
        self._pending = ""  # a tail that may become a marker

    def feed(self, delta: str) -> tuple[str, list[dict[str, Any]]]:
        """The clean text to emit now and the annotations it completes."""
        buffer = self._pending + delta
        partial = _PARTIAL.search(buffer)
        if partial is not None and partial.start() < len(buffer):
            self._pending = buffer[partial.start():]
            buffer = buffer[:partial.start()]
        else:
            self._pending = ""
        return self._clean(buffer)

    def flush(self) -> tuple[str, list[dict[str, Any]]]:
        """What is still held back, once the part ends."""
        buffer, self._pending = self._pending, ""
        return self._clean(buffer)

    def _clean(self, buffer: str) -> tuple[str, list[dict[str, Any]]]:
        out: list[str] = []
        notes: list[dict[str, Any]] = []
        written = self.text
        pos = 0
        for match in _MARKER.finditer(buffer):
            numbers = _numbers(match)
            found = [self.sources.get(n) for n in numbers]
            if not numbers or any(s is None for s in found):
                continue  # not every number is a result shown to the model: plain text
            before = buffer[pos:match.start()]
            out.append(before)
            written += before
            for source in found:
                assert source is not None
                notes.append(annotation(source, len(written), written))
            pos = match.end()
        rest = buffer[pos:]
        out.append(rest)
        clean = "".join(out)
        self.text += clean
        return clean, notes


def strip_markers(text: str, sources: Sources) -> tuple[str, list[dict[str, Any]]]:
    """A whole text at once (a non-streamed part): the clean text and its annotations."""
    stream = CitationStream(sources)
    head, notes = stream.feed(text)
    tail, more = stream.flush()
    return head + tail, notes + more
