"""Grammar-constrained calls of custom tools on the embedded model, through llguidance.

A custom tool with a grammar (``format: {type: grammar}``) reaches the embedded backend as a chat
function whose ``function`` carries the grammar under ``GRAMMAR_KEY`` (tools/custom.py). llama.cpp's
own grammars cannot express OpenAI's Lark (nor embed a grammar in a JSON string), so such a
generation is constrained by llguidance instead: the model writes a custom call as a line
``<tool_name>`` followed by the raw input, which the tool's grammar constrains token by token; a
JSON call of an ordinary tool, or free text, stay the other branches. The reader turns a custom
call back into a function call whose arguments are ``{"input": <the text>}``, what every backend
sends for a custom tool.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import llguidance
import numpy as np
from llguidance.numpy import allocate_token_bitmask, apply_token_bitmask_inplace, fill_next_token_bitmask

from rejoinder.tools.grammar import GRAMMAR_KEY, lark_of

# Free text, told apart from a JSON call ("{") and a custom call ("<") by its first character.
_TEXT = r"/[^{<\s][\s\S]*/"


def grammar_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in tools if (t.get("function") or {}).get(GRAMMAR_KEY)]


def opener(name: str) -> str:
    """How a custom call of ``name`` starts."""
    return f"<{name}>\n"


def guidance_grammar(json_tools_schema: dict[str, Any] | None, customs: list[dict[str, Any]], must_call: bool,
                     answer_schema: dict[str, Any] | None) -> str:
    """llguidance's grammar for one generation: a JSON call, a custom call or (unless a call is
    required) text or the JSON answer ``answer_schema``."""
    branches, rules, grammars = [], [], [{"lark_grammar": ""}]
    if json_tools_schema is not None:
        branches.append("json_call")
        rules.append(f"json_call: %json {json.dumps(json_tools_schema)}")
    for i, tool in enumerate(customs):
        fn = tool["function"]
        branches.append(f"custom_{i}")
        rules.append(f"custom_{i}: {json.dumps(opener(fn['name']))} @g{i}")
        spec = fn[GRAMMAR_KEY]
        grammars.append({"name": f"g{i}", "lark_grammar": lark_of(spec["syntax"], spec["definition"])})
    if not must_call:
        if answer_schema is not None:
            branches.append("answer")
            rules.append(f"answer: %json {json.dumps(answer_schema)}")
        else:
            branches.append("text")
            rules.append(f"text: {_TEXT}")
    grammars[0]["lark_grammar"] = "\n".join([f"start: {' | '.join(branches)}", *rules]) + "\n"
    serialized = json.dumps({"grammars": grammars})
    error = llguidance.LLMatcher.validate_grammar(serialized)
    if error and not error.startswith("WARNING"):
        raise ValueError(error)
    return serialized


def parse_custom_call(text: str, names: tuple[str, ...]) -> tuple[str, str] | None:
    """(name, arguments JSON) of a complete custom call, or None."""
    for name in names:
        head = opener(name)
        if text.startswith(head):
            return name, json.dumps({"input": text[len(head):]})
    return None


class TokenizerCache:
    """llguidance's view of the model's vocabulary: built once (about a second), on the worker thread."""

    def __init__(self) -> None:
        self._tokenizer: llguidance.LLTokenizer | None = None
        self._lock = threading.Lock()

    def get(self, llm: Any) -> llguidance.LLTokenizer:
        with self._lock:
            if self._tokenizer is None:
                import llama_cpp
                from llguidance.llamacpp import lltokenizer_from_vocab

                vocab = llama_cpp.llama_model_get_vocab(llm.model)
                self._tokenizer = lltokenizer_from_vocab(vocab, n_vocab=llm.n_vocab())
            return self._tokenizer


class GuidedLogits:
    """A llama.cpp logits processor: each step, the tokens llguidance allows, and no other."""

    def __init__(self, tokenizer: llguidance.LLTokenizer, grammar: str, prompt_tokens: int, n_vocab: int):
        self.matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        self.seen = prompt_tokens
        self.mask = allocate_token_bitmask(1, n_vocab)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        for token in input_ids[self.seen:]:
            self.matcher.consume_token(int(token))
        self.seen = len(input_ids)
        fill_next_token_bitmask(self.matcher, self.mask)
        apply_token_bitmask_inplace(scores, self.mask)
        return scores
