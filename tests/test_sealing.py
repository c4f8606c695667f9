"""Sealed blobs (crypto/): what opens, what does not, and where the keys come from."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rejoinder.config import Settings
from rejoinder.crypto.keys import KEY_FILE, decode_key, load_key_ring, new_key
from rejoinder.crypto.sealing import KeyRing, Purpose, SealError, invalid_encrypted_content
from rejoinder.tenant import Tenant

ALICE, BOB = Tenant("alice"), Tenant("bob")


def ring(*keys: str) -> KeyRing:
    return KeyRing([decode_key(k) for k in keys])


def test_a_blob_opens_for_its_tenant_and_purpose() -> None:
    keys = ring(new_key())
    blob = keys.seal(Purpose.REASONING, ALICE, b"Let me think: 2 + 2 = 4.")
    assert keys.open(Purpose.REASONING, ALICE, blob) == b"Let me think: 2 + 2 = 4."
    assert b"think" not in base64.urlsafe_b64decode(blob)
    # Two seals of one text differ (a fresh nonce each time).
    assert keys.seal(Purpose.REASONING, ALICE, b"x") != keys.seal(Purpose.REASONING, ALICE, b"x")


@pytest.mark.parametrize("tenant, purpose", [(BOB, Purpose.REASONING), (ALICE, Purpose.COMPACTION)])
def test_another_tenant_or_purpose_cannot_open_it(tenant: Tenant, purpose: Purpose) -> None:
    keys = ring(new_key())
    blob = keys.seal(Purpose.REASONING, ALICE, b"secret reasoning")
    with pytest.raises(SealError):
        keys.open(purpose, tenant, blob)


def test_every_tampered_byte_is_refused() -> None:
    keys = ring(new_key())
    raw = bytearray(base64.urlsafe_b64decode(keys.seal(Purpose.REASONING, ALICE, b"abc")))
    for i in range(len(raw)):
        changed = bytearray(raw)
        changed[i] ^= 0x01
        with pytest.raises(SealError):
            keys.open(Purpose.REASONING, ALICE, base64.urlsafe_b64encode(bytes(changed)).decode())
    for junk in ("", "not base64 at all!", "gAAAAABk", base64.urlsafe_b64encode(bytes(raw[:20])).decode(), "é"):
        with pytest.raises(SealError):
            keys.open(Purpose.REASONING, ALICE, junk)


def test_rotation_first_key_seals_all_keys_open() -> None:
    old, new = new_key(), new_key()
    before = ring(old).seal(Purpose.REASONING, ALICE, b"made before rotation")
    rotated = ring(new, old)
    assert rotated.open(Purpose.REASONING, ALICE, before) == b"made before rotation"
    after = rotated.seal(Purpose.REASONING, ALICE, b"made after")
    assert ring(new).open(Purpose.REASONING, ALICE, after) == b"made after"
    with pytest.raises(SealError):  # the old key alone cannot open what the new one sealed
        ring(old).open(Purpose.REASONING, ALICE, after)
    with pytest.raises(SealError):  # another server's key
        ring(new_key()).open(Purpose.REASONING, ALICE, before)


def test_configured_keys_are_checked_at_start_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    a, b = new_key(), new_key()
    monkeypatch.setenv("REJOINDER_SEALING_KEYS", f"{a}, {b}")
    settings = Settings(data_dir=tmp_path)
    assert settings.sealing_keys == [a, b]
    keys = load_key_ring(settings.sealing_keys, tmp_path)
    assert ring(a).open(Purpose.COMPACTION, ALICE, keys.seal(Purpose.COMPACTION, ALICE, b"z")) == b"z"
    assert not (tmp_path / KEY_FILE).exists()
    # Standard base64 (as openssl rand -base64 32 prints it) is a key too.
    standard = base64.b64encode(decode_key(a)).decode()
    assert decode_key(standard) == decode_key(a)
    for bad in ("short", base64.b64encode(b"x" * 16).decode()):
        monkeypatch.setenv("REJOINDER_SEALING_KEYS", bad)
        with pytest.raises(ValueError, match="sealing key"):
            Settings(data_dir=tmp_path)


def test_without_configuration_one_key_is_kept_in_the_data_dir(tmp_path: Path) -> None:
    first = load_key_ring([], tmp_path / "data")
    blob = first.seal(Purpose.REASONING, ALICE, b"kept")
    path = tmp_path / "data" / KEY_FILE
    assert path.is_file() and (path.stat().st_mode & 0o777) == 0o600
    # A restart reads the same key.
    assert load_key_ring([], tmp_path / "data").open(Purpose.REASONING, ALICE, blob) == b"kept"
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE]


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    """``serve --workers N`` starts N processes on one data directory at once."""
    code = ("import sys; from pathlib import Path; from rejoinder.crypto.keys import load_key_ring; "
            "load_key_ring([], Path(sys.argv[1])); print(Path(sys.argv[1], 'sealing.key').read_text().strip())")
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True,
                                                      capture_output=True, text=True, env=os.environ).stdout,
                             range(4)))
    assert len(set(outs)) == 1 and decode_key(outs[0].strip())


def test_the_api_error_names_the_item() -> None:
    err = invalid_encrypted_content("rs_123", "input[3].encrypted_content")
    assert err.status == 400
    assert err.body()["error"] == {
        "message": "The encrypted content for item rs_123 could not be verified. Reason: Encrypted content could "
                   "not be decrypted or parsed.",
        "type": "invalid_request_error", "param": "input[3].encrypted_content", "code": "invalid_encrypted_content"}


def test_rejoinder_config_masks_the_keys(tmp_path: Path) -> None:
    from rejoinder.commands import effective_config

    key = new_key()
    assert effective_config(Settings(data_dir=tmp_path, sealing_keys=[key]))["sealing_keys"] == ["***"]
    assert effective_config(Settings(data_dir=tmp_path))["sealing_keys"] == f"generated in {tmp_path / KEY_FILE}"
    out = subprocess.run([sys.executable, "-m", "rejoinder", "sealing-key"], capture_output=True, text=True, check=True)
    assert len(decode_key(out.stdout.strip())) == 32
