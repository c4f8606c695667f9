"""Sealing and opening blobs with AES-256-GCM under a key ring.

A sealed blob is ``base64url(version | key id | nonce | ciphertext+tag)``:

- ``version`` (1 byte) names this layout, so a later one can be told apart;
- ``key id`` (4 bytes) is a digest of the key that sealed it: the first key of the ring seals,
  every key opens, so a key can be rotated in (first) and out (dropped once its blobs expired);
- the associated data binds the blob to its header, its **purpose** (reasoning, compaction) and
  the **tenant** it was made for: a blob moved to another principal, or from one field to
  another, fails to open exactly like a tampered one. With API keys off every request is the
  ``anonymous`` tenant, so a blob is then bound to the server (its keys) alone.

Nothing here knows about HTTP: a blob that does not open raises ``SealError``, and the caller
names the input item (``invalid_encrypted_content`` in ``api_error``).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rejoinder.errors import InvalidRequest
from rejoinder.tenant import Tenant

VERSION = 1
KEY_BYTES = 32
_KEY_ID_BYTES = 4
_NONCE_BYTES = 12
_TAG_BYTES = 16
_HEADER_BYTES = 1 + _KEY_ID_BYTES + _NONCE_BYTES


class Purpose(enum.StrEnum):
    """What a blob holds; part of its associated data, so one kind cannot pass for another."""

    REASONING = "reasoning"
    COMPACTION = "compaction"


class SealError(ValueError):
    """A blob that does not open: not ours, tampered, made for another tenant or purpose, or sealed
    by a key no longer in the ring. Deliberately one error: which of these it was is not told."""


def key_id(key: bytes) -> bytes:
    """A short, public name for a key (a digest: it says nothing about the key)."""
    return hashlib.sha256(b"rejoinder sealing key id\0" + key).digest()[:_KEY_ID_BYTES]


def _associated_data(header: bytes, purpose: Purpose, tenant: Tenant) -> bytes:
    return b"\0".join((header, purpose.value.encode(), tenant.principal.encode()))


class KeyRing:
    """AES-256-GCM keys: the first seals, all open. Random 96-bit nonces: a key seals far fewer
    than the 2**32 blobs past which GCM's nonce collisions become a concern before it rotates."""

    def __init__(self, keys: Sequence[bytes]):
        if not keys:
            raise ValueError("a key ring needs at least one key")
        for key in keys:
            if len(key) != KEY_BYTES:
                raise ValueError(f"a sealing key is {KEY_BYTES} bytes, not {len(key)}")
        self._sealer = (key_id(keys[0]), AESGCM(keys[0]))
        self._openers: dict[bytes, list[AESGCM]] = {}
        for key in keys:
            self._openers.setdefault(key_id(key), []).append(AESGCM(key))

    @property
    def sealing_key_id(self) -> str:
        return self._sealer[0].hex()

    def seal(self, purpose: Purpose, tenant: Tenant, plaintext: bytes) -> str:
        kid, aead = self._sealer
        header = bytes((VERSION,)) + kid + os.urandom(_NONCE_BYTES)
        sealed = aead.encrypt(header[1 + _KEY_ID_BYTES:], plaintext, _associated_data(header, purpose, tenant))
        return base64.urlsafe_b64encode(header + sealed).decode("ascii")

    def open(self, purpose: Purpose, tenant: Tenant, blob: str) -> bytes:
        try:
            raw = base64.urlsafe_b64decode(blob.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, AttributeError):
            raise SealError("not a sealed blob") from None
        if len(raw) < _HEADER_BYTES + _TAG_BYTES or raw[0] != VERSION:
            raise SealError("not a sealed blob of a known version")
        header, sealed = raw[:_HEADER_BYTES], raw[_HEADER_BYTES:]
        nonce = header[1 + _KEY_ID_BYTES:]
        aad = _associated_data(header, purpose, tenant)
        for aead in self._openers.get(header[1:1 + _KEY_ID_BYTES], ()):
            try:
                return aead.decrypt(nonce, sealed, aad)
            except InvalidTag:
                continue
        raise SealError("the blob does not open with this server's keys for this tenant")


def invalid_encrypted_content(item_id: str | None, param: str) -> InvalidRequest:
    """OpenAI's answer to a blob it cannot open, naming the input item (``input[3].encrypted_content``)."""
    what = f"for item {item_id} " if item_id else ""
    return InvalidRequest(f"The encrypted content {what}could not be verified. Reason: Encrypted content could "
                          "not be decrypted or parsed.", param=param, code="invalid_encrypted_content")
