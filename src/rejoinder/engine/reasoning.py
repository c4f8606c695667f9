"""Reasoning of open models as OpenAI reasoning items: reading it, sealing it, giving it back.

- **Reading.** Backends stream reasoning beside the answer (``reasoning_content`` or ``reasoning``
  deltas: vLLM, llama.cpp, Ollama, DeepSeek), or inline it in the text between ``<think>`` and
  ``</think>`` (a model setting, ``think_tags``: ``on`` when the model opens the block itself,
  ``open`` when its chat template opened it in the prompt, as DeepSeek-R1's does). ``ThinkSplitter``
  turns inline blocks into reasoning deltas, whatever the chunk boundaries.
- **Sealing.** With ``include: ["reasoning.encrypted_content"]`` a reasoning item carries its text
  sealed for the tenant (crypto/sealing.py): a stateless client (store false) sends it back and
  the backend reads its earlier reasoning again.
- **Giving back.** ``reasoning.context`` picks which reasoning items reach the backend on later
  steps: ``current_turn`` (since the last user message: the reasoning behind the tool calls being
  answered; ``auto`` means this) or ``all_turns``. The transcript holds it as the assistant
  message's ``reasoning_content``; ``chat_request.py`` renames or inlines it per backend
  (``reasoning_replay``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rejoinder.crypto.sealing import KeyRing, Purpose, SealError, invalid_encrypted_content
from rejoinder.engine import chunks as C
from rejoinder.engine.context import reasoning_text
from rejoinder.tenant import Tenant

OPEN, CLOSE = "<think>", "</think>"
INCLUDE_ENCRYPTED = "reasoning.encrypted_content"


def _partial_tail(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkSplitter:
    """Text deltas with inline ``<think>...</think>`` blocks -> reasoning deltas and text deltas."""

    def __init__(self, starts_open: bool = False):
        self.state = "thinking" if starts_open else "start"
        self.held = ""  # text that may be the start of a tag
        self.after_close = False  # strip the blank lines a model puts after </think>

    def feed(self, delta: C.Delta) -> list[C.Delta]:
        if type(delta) is not C.TextDelta:
            return [delta]
        if self.state == "answer" and not self.after_close:
            return [delta]
        return self._text(self.held + delta.text, delta)

    def _text(self, text: str, delta: C.TextDelta) -> list[C.Delta]:
        self.held = ""
        out: list[C.Delta] = []
        if self.state == "start":
            lead = text.lstrip()
            if lead.startswith(OPEN):
                self.state, text = "thinking", lead[len(OPEN):]
            elif OPEN.startswith(lead):
                self.held = text  # "<thi" so far: wait for more
                return out
            else:
                self.state = "answer"
        if self.state == "thinking":
            if text.lstrip().startswith(OPEN):  # a template that opened it, and the model too
                text = text.lstrip()[len(OPEN):]
            end = text.find(CLOSE)
            if end < 0:
                keep = _partial_tail(text, CLOSE)
                thought = text[:len(text) - keep]
                self.held = text[len(text) - keep:]
                return [C.ReasoningDelta(thought)] if thought else out
            if end:
                out.append(C.ReasoningDelta(text[:end]))
            self.state, self.after_close, text = "answer", True, text[end + len(CLOSE):]
        if self.after_close:
            text = text.lstrip()
            if not text:
                return out
            self.after_close = False
        out.append(C.TextDelta(text, delta.logprobs))
        return out

    def flush(self) -> list[C.Delta]:
        held, self.held = self.held, ""
        if not held:
            return []
        return [C.ReasoningDelta(held)] if self.state == "thinking" else [C.TextDelta(held)]


def estimate_tokens(text: str) -> int:
    """Reasoning tokens when the backend does not count them: about four characters a token."""
    return -(-len(text) // 4)


@dataclass(frozen=True)
class ReasoningOutput:
    """What a step does with the reasoning it reads: a summary part beside the text (the request
    set ``reasoning.summary``), and sealing the text into ``encrypted_content`` (the request
    included ``reasoning.encrypted_content``)."""

    summary: bool = False
    seal: Callable[[str], str] | None = None


def reasoning_output(params: dict[str, Any], ring: KeyRing | None, tenant: Tenant) -> ReasoningOutput:
    asked = params.get("reasoning") or {}
    summary = bool(asked.get("summary") or asked.get("generate_summary"))
    seal = None
    if ring is not None and wants_encrypted(params):
        def seal(text: str) -> str:
            return seal_reasoning(ring, tenant, text)
    return ReasoningOutput(summary, seal)


# -- sealing ----------------------------------------------------------------------------------------

def wants_encrypted(params: dict[str, Any]) -> bool:
    return INCLUDE_ENCRYPTED in (params.get("include") or ())


def seal_reasoning(ring: KeyRing, tenant: Tenant, text: str) -> str:
    return ring.seal(Purpose.REASONING, tenant, json.dumps({"reasoning_text": text}).encode())


def _open(ring: KeyRing, tenant: Tenant, blob: str) -> str:
    try:
        payload = json.loads(ring.open(Purpose.REASONING, tenant, blob))
        return str(payload["reasoning_text"])
    except (ValueError, KeyError, TypeError):
        raise SealError("not a reasoning blob") from None


def unseal(ring: KeyRing | None, tenant: Tenant, history: list[dict[str, Any]],
           inputs: list[tuple[int, Any, dict[str, Any]]]) -> dict[str, str]:
    """The text of every reasoning item that carries only its sealed blob, by item id.

    ``inputs``: (position in the request's ``input``, the item as sent, the item as normalized). A
    blob there that does not open is the client's error: 400 ``invalid_encrypted_content`` naming
    it (``input[3].encrypted_content``). One in the stored history that no longer opens (its key
    rotated out) is left out of the transcript: the turn goes on without that reasoning."""
    out: dict[str, str] = {}
    for position, sent, item in inputs:
        blob = item.get("encrypted_content") if item.get("type") == "reasoning" else None
        if not blob:
            continue
        try:
            if ring is None:
                raise SealError("no key ring")
            text = _open(ring, tenant, blob)
        except SealError:
            raise invalid_encrypted_content(sent.get("id") if isinstance(sent, dict) else None,
                                            f"input[{position}].encrypted_content") from None
        if not reasoning_text(item):
            out[item["id"]] = text
    for item in history:
        blob = item.get("encrypted_content") if item.get("type") == "reasoning" else None
        if blob and ring is not None and not reasoning_text(item):
            try:
                out[item["id"]] = _open(ring, tenant, blob)
            except SealError:
                continue
    return out
