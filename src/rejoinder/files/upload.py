"""Reading a ``multipart/form-data`` upload as it arrives, one stored part at a time.

python-multipart's streaming parser calls back with slices of each form part; the file's bytes
go into a buffer that is written to the database whenever it holds ``part_bytes``, so memory stays
at about one part whatever the upload's size. The size limit is checked on every slice, so an
oversized upload is refused as soon as it crosses the limit, not after it was read. The route
reads the body itself (no JSON body cap applies here); this module is its only limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from rejoinder.errors import APIError, InvalidRequest
from rejoinder.files.objects import clean_filename, expiry_seconds, validate_purpose
from rejoinder.files.store import FileStore
from rejoinder.ids import new_id
from rejoinder.tenant import Tenant

MAX_FIELD_BYTES = 64 * 1024  # a form field that is not the file (purpose, expires_after[...])
FIELDS = ("purpose", "expires_after[anchor]", "expires_after[seconds]")


class FileTooLarge(APIError):
    status = 413

    def __init__(self, limit: int):
        super().__init__(f"The file is larger than the maximum of {limit} bytes.", param="file",
                         code="file_too_large")


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    value: bytearray = field(default_factory=bytearray)


class _Form:
    """The parser's callbacks, collecting fields and the file's pending bytes between awaits."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.part: _Part | None = None
        self._header_name = bytearray()
        self._header_value = bytearray()
        self.file_name: str | None = None
        self.file_seen = False
        self.pending = bytearray()  # the file's bytes not yet stored
        self.size = 0

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self._begin, "on_header_field": self._hfield, "on_header_value": self._hvalue,
                "on_header_end": self._hend, "on_headers_finished": self._headers_done,
                "on_part_data": self._data, "on_part_end": self._end}

    def _begin(self) -> None:
        self.part = _Part()

    def _hfield(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _hvalue(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _hend(self) -> None:
        assert self.part is not None
        self.part.headers[self._header_name.decode("latin-1").lower()] = self._header_value.decode("utf-8", "replace")
        self._header_name.clear()
        self._header_value.clear()

    def _headers_done(self) -> None:
        assert self.part is not None
        _, options = parse_options_header(self.part.headers.get("content-disposition", ""))
        self.part.name = options.get(b"name", b"").decode("utf-8", "replace")
        raw = options.get(b"filename")
        self.part.filename = raw.decode("utf-8", "replace") if raw is not None else None
        if self.part.name == "file":
            if self.file_seen:
                raise InvalidRequest("Only one file may be uploaded per request.", param="file")
            self.file_seen = True
            self.file_name = clean_filename(self.part.filename)

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self.part
        assert part is not None
        if part.name == "file":
            self.pending += data[start:end]
            self.size += end - start
            return
        part.value += data[start:end]
        if len(part.value) > MAX_FIELD_BYTES:
            raise InvalidRequest(f"The form field '{part.name[:64]}' is too long.", param=part.name[:64])

    def _end(self) -> None:
        part = self.part
        assert part is not None
        if part.name != "file":
            if part.name in FIELDS:
                self.fields[part.name] = part.value.decode("utf-8", "replace")
            elif part.name:
                raise InvalidRequest(f"Unknown parameter: '{part.name[:64]}'.", param=part.name[:64],
                                     code="unknown_parameter")
        self.part = None


def _write(parser: MultipartParser, chunk: bytes) -> None:
    try:
        parser.write(chunk)
    except FormParserError as exc:
        raise InvalidRequest(f"The multipart body is malformed: {exc}", param="file",
                             code="invalid_multipart") from None


def boundary_of(content_type: str | None) -> bytes:
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequest("Uploads must be sent as multipart/form-data with a 'file' and a 'purpose'.",
                             param="file", code="invalid_content_type")
    return boundary


async def receive_upload(chunks: AsyncIterator[bytes], content_type: str | None, owner: Tenant, store: FileStore,
                         max_bytes: int, part_bytes: int) -> dict[str, Any]:
    """Parse and store one upload; returns the File object. Whatever goes wrong (a bad field, the
    size limit, the client going away) leaves nothing stored."""
    form = _Form()
    parser = MultipartParser(boundary_of(content_type), cast(Any, form.callbacks()))
    file_id = new_id("file", sep="-")
    begun = False
    parts = 0
    try:
        async for chunk in chunks:
            _write(parser, chunk)
            if form.size > max_bytes:
                raise FileTooLarge(max_bytes)
            if "purpose" in form.fields:
                validate_purpose(form.fields["purpose"])  # refuse early, before the file is stored
            while len(form.pending) >= part_bytes:
                if not begun:
                    assert form.file_name is not None
                    await store.begin(file_id, owner, form.file_name)
                    begun = True
                data = bytes(form.pending[:part_bytes])
                del form.pending[:part_bytes]
                await store.put_part(file_id, parts, data)
                parts += 1
        if parser.state != MultipartState.END:
            raise InvalidRequest("The multipart body ended before its closing boundary.", param="file",
                                 code="invalid_multipart")
        if not form.file_seen:
            raise InvalidRequest("Missing required parameter: 'file'.", param="file",
                                 code="missing_required_parameter")
        purpose = validate_purpose(form.fields.get("purpose"))
        expires_in = expiry_seconds(form.fields.get("expires_after[anchor]"),
                                    form.fields.get("expires_after[seconds]"), purpose)
        if not begun:
            assert form.file_name is not None
            await store.begin(file_id, owner, form.file_name)
            begun = True
        if form.pending or parts == 0:
            await store.put_part(file_id, parts, bytes(form.pending))
        return await store.complete(file_id, purpose, form.size, expires_in)
    except BaseException:
        if begun:
            await asyncio.shield(store.discard(file_id))
        raise
