"""The grammars of custom tools (``format: {type: grammar, syntax: lark | regex}``).

OpenAI's grammars are llguidance's dialects (its Lark allows what Python's ``lark`` refuses, such
as the zero-width ``/(.*)/`` in Codex's apply_patch grammar), so llguidance itself checks them:
the declaration when a request arrives, and each call's input before it reaches the client.
Checking runs over a 256-token byte tokenizer, which is built in a millisecond and finds the exact
byte where an input leaves the grammar, for a message the model can act on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import llguidance

Syntax = Literal["lark", "regex"]
# In a chat tool's ``function``: the custom tool's grammar, for backends that constrain decoding by it
# (the embedded model). Backends that send tools upstream leave it out (backends/openai_compat.py).
GRAMMAR_KEY = "x-rejoinder-grammar"
_EOS = 256
_CONTEXT = 40  # characters of the input shown before the point where it breaks the grammar


class GrammarError(ValueError):
    """The grammar itself is malformed; the message is llguidance's, first line first."""


@functools.cache
def _byte_tokenizer() -> llguidance.LLTokenizer:
    """Every byte is its own token: consuming an input byte by byte finds where it fails."""
    return llguidance.LLTokenizer.from_tiktoken(  # type: ignore[attr-defined]
        encoder={bytes([i]): i for i in range(256)}, special_tokens={"<|end|>": _EOS}, pattern=r"[\s\S]",
        eos_token=_EOS, n_vocab=None, slices=[])


@dataclass(frozen=True)
class ToolGrammar:
    """A compiled grammar: ``serialized`` is llguidance's form of it (what the embedded model and
    the checker both read); ``definition`` is the client's text, for backends that take Lark."""

    syntax: Syntax
    definition: str
    serialized: str

    def mismatch(self, text: str) -> str | None:
        """None when ``text`` is a complete sentence of the grammar; otherwise where and why not."""
        matcher = llguidance.LLMatcher(_byte_tokenizer(), self.serialized, log_level=0)
        data = text.encode()
        consumed = matcher.try_consume_tokens(list(data))
        if consumed == len(data):
            if matcher.is_accepting():
                return None
            return "the input ends before the grammar is complete (it stops too early)."
        before = data[:consumed].decode(errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        shown = before[-_CONTEXT:]
        bad = data[consumed:consumed + 1].decode(errors="replace") or data[consumed:consumed + 4].decode(
            errors="replace")
        return (f"the input breaks the grammar at line {line}, column {column}: {bad!r} cannot follow "
                f"{shown!r}.")


@functools.lru_cache(maxsize=256)
def compile_grammar(syntax: Syntax, definition: str) -> ToolGrammar:
    """The grammar, checked; a malformed one raises :class:`GrammarError`."""
    try:
        if syntax == "lark":
            serialized = llguidance.LLMatcher.grammar_from_lark(definition)
        else:
            serialized = llguidance.LLMatcher.grammar_from_regex(definition)
    except (ValueError, RuntimeError) as exc:
        raise GrammarError(str(exc).strip()) from exc
    error = llguidance.LLMatcher.validate_grammar(serialized)
    if error and not error.startswith("WARNING"):
        raise GrammarError(error.strip())
    return ToolGrammar(syntax, definition, serialized)


def lark_of(syntax: str, definition: str) -> str:
    """The grammar as Lark (a regex becomes the one terminal of ``start``)."""
    if syntax == "regex":
        return "start: /" + llguidance.regex_to_lark(definition) + "/\n"  # it escapes "/" itself
    return definition


def grammar_of(tool: dict[str, object]) -> ToolGrammar | None:
    """The grammar a custom tool declares (None: free text, or ``format: {type: text}``)."""
    fmt = tool.get("format")
    if not isinstance(fmt, dict) or fmt.get("type") != "grammar":
        return None
    return compile_grammar(fmt["syntax"], fmt["definition"])  # type: ignore[arg-type]
