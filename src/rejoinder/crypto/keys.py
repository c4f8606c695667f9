"""Where the sealing keys come from: ``sealing_keys`` in the settings (every replica must be given
the same list), else one key generated on first start and kept in ``<data_dir>/sealing.key``.

A configured key is 32 random bytes in base64 (standard or URL-safe alphabet):
``rejoinder sealing-key`` prints a new one. To rotate, put the new key first and keep the old
ones after it until the blobs they sealed are no longer sent back.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
from pathlib import Path

from rejoinder.crypto.sealing import KEY_BYTES, KeyRing

log = logging.getLogger(__name__)

KEY_FILE = "sealing.key"


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def decode_key(text: str) -> bytes:
    """A configured key as bytes; ValueError (naming no part of the key) if it is not 32 bytes of base64."""
    cleaned = text.strip()
    try:
        raw = base64.urlsafe_b64decode(cleaned.replace("+", "-").replace("/", "_") + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("a sealing key must be base64 (rejoinder sealing-key makes one)") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"a sealing key must be {KEY_BYTES} bytes in base64, not {len(raw)} "
                         "(rejoinder sealing-key makes one)")
    return raw


def _stored_key(data_dir: Path) -> str:
    """The data directory's key, made on first use. Several processes starting at once (``serve
    --workers``) agree on one: each writes its own file and links it into place, and whoever finds
    the name taken reads the winner's."""
    path = data_dir / KEY_FILE
    if path.exists():
        return path.read_text()
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new_key() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            log.info("generated a sealing key in %s (replicas must share one: set sealing_keys)", path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text()


def load_key_ring(configured: list[str], data_dir: Path, shared_storage: bool = False) -> KeyRing:
    """The server's key ring: the configured keys, else the data directory's own key."""
    if configured:
        return KeyRing([decode_key(k) for k in configured])
    if shared_storage:
        log.warning("sealing_keys is not set: this replica seals with its own key in %s, and blobs it hands out "
                    "(encrypted reasoning, compaction) do not open on other replicas", data_dir / KEY_FILE)
    return KeyRing([decode_key(_stored_key(data_dir))])
