"""Text out of an uploaded file: plain text, Markdown, code, JSON, HTML and PDF (pypdf).

The kind is decided by the file's extension, then by its content (a PDF header; else text that
decodes as UTF-8). Anything else is ``unsupported_file``; a file that claims a kind and is broken
is ``invalid_file`` (the codes of ``VectorStoreFile.last_error``).
"""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from pathlib import PurePosixPath

HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}
JSON_EXTENSIONS = {".json", ".jsonl"}
BINARY_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".zip", ".gz", ".tar", ".exe", ".bin", ".mp3",
                     ".mp4", ".wav", ".docx", ".xlsx", ".pptx"}


class ExtractionError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code  # "unsupported_file" | "invalid_file"
        self.message = message


class _HTMLText(HTMLParser):
    """Visible text of a page: script and style bodies are skipped, blocks become lines."""

    SKIP = {"script", "style", "noscript", "template", "head"}
    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre",
              "blockquote", "title", "td", "th"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        return "\n".join(line for line in lines if line)


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ExtractionError("unsupported_file", "The file is not text (it is not valid UTF-8) and not a PDF.")


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ExtractionError("invalid_file", "The PDF is encrypted.")
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except ExtractionError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise ExtractionError("invalid_file", f"The PDF could not be read: {exc}") from None


def _html(text: str) -> str:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    return parser.text()


def _json(text: str, lines: bool) -> str:
    """JSON is indexed as its text, checked first so a broken file fails as invalid."""
    try:
        if lines:
            for line in filter(str.strip, text.splitlines()):
                json.loads(line)
        else:
            json.loads(text)
    except ValueError as exc:
        raise ExtractionError("invalid_file", f"The file is not valid JSON: {exc}") from None
    return text


def extract_text(filename: str, data: bytes) -> str:
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix == ".pdf" or data[:5] == b"%PDF-":
        return _pdf(data)
    if suffix in BINARY_EXTENSIONS:
        raise ExtractionError("unsupported_file", f"Files of type {suffix} are not supported for search.")
    if b"\x00" in data[:8192] and data[:2] not in (b"\xff\xfe", b"\xfe\xff"):
        raise ExtractionError("unsupported_file", "The file is binary, not text.")
    text = _decode(data)
    if suffix in HTML_EXTENSIONS:
        return _html(text)
    if suffix in JSON_EXTENSIONS:
        return _json(text, lines=suffix == ".jsonl")
    return text
