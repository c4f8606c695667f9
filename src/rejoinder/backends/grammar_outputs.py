"""A forced custom-tool call written under its grammar by a server that constrains decoding (vLLM).

vLLM cannot constrain one tool's arguments by a grammar, but it constrains a whole answer:
``structured_outputs: {"grammar": ...}`` (``guided_grammar`` before vLLM 0.10; its ``guidance``
backend reads OpenAI's Lark dialect as is). So when a step forces a custom tool that has a grammar
(the client's ``tool_choice``, or the engine's retry of a call that broke it), this wrapper asks
for the input itself as the answer, under the grammar, without tools, and hands the engine the
function call a chat model would have made: ``{"input": <the text>}``, streamed as it comes.
Other steps pass through unchanged. A model's ``custom_grammar`` setting turns it on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from rejoinder.backends.base import NOT_ADMITTED, Admission, ChatBackend
from rejoinder.backends.chunk import Chunk
from rejoinder.ids import new_id
from rejoinder.tools.grammar import GRAMMAR_KEY, lark_of

PARAMS: dict[str, Callable[[str], dict[str, Any]]] = {
    "structured_outputs": lambda g: {"structured_outputs": {"grammar": g}},
    "guided_grammar": lambda g: {"guided_grammar": g},
}


def forced_grammar_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The ``function`` of the grammar tool this step must call, if it must call one."""
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        return None
    name = (choice.get("function") or {}).get("name")
    for tool in body.get("tools") or []:
        fn = tool.get("function") or {}
        if fn.get("name") == name and fn.get(GRAMMAR_KEY):
            return dict(fn)
    return None


class GrammarOutputs:
    """Wraps a chat backend whose server constrains answers by a grammar (``param``: how it is asked)."""

    def __init__(self, inner: ChatBackend, param: str):
        self.inner = inner
        self.param = PARAMS[param]

    def stream(self, body: dict[str, Any], admission: Admission = NOT_ADMITTED) -> AsyncIterator[list[Chunk]]:
        fn = forced_grammar_tool(body)
        if fn is None:
            return self.inner.stream(body, admission)
        return self._as_call(body, fn, admission)

    async def _as_call(self, body: dict[str, Any], fn: dict[str, Any], admission: Admission
                       ) -> AsyncIterator[list[Chunk]]:
        ask = {k: v for k, v in body.items() if k not in ("tools", "tool_choice", "parallel_tool_calls")}
        note = (f"Reply with only the `input` of the tool {fn['name']}: the text itself, nothing around it."
                + (f"\nThe tool: {fn['description']}" if fn.get("description") else ""))
        ask["messages"] = [*(body.get("messages") or []), {"role": "user", "content": note}]
        ask.update(self.param(lark_of(fn[GRAMMAR_KEY]["syntax"], fn[GRAMMAR_KEY]["definition"])))
        call_id, opened = new_id("call"), False
        async for chunks in self.inner.stream(ask, admission):
            out: list[Chunk] = []
            for chunk in chunks:
                for choice in chunk.get("choices") or []:
                    delta: Any = choice.get("delta") or {}
                    pieces: list[Any] = []
                    if not opened and (delta.get("content") or choice.get("finish_reason")):
                        opened = True
                        pieces.append({"index": 0, "id": call_id, "type": "function",
                                       "function": {"name": fn["name"], "arguments": '{"input": "'}})
                    if delta.get("content"):
                        pieces.append({"index": 0, "function": {"arguments": json.dumps(delta["content"])[1:-1]}})
                    if choice.get("finish_reason"):
                        pieces.append({"index": 0, "function": {"arguments": '"}'}})
                    rest: Any = {k: v for k, v in delta.items() if k not in ("content", "tool_calls")}
                    if pieces:
                        rest["tool_calls"] = pieces
                    choice["delta"] = rest
                    if choice.get("finish_reason") == "stop":
                        choice["finish_reason"] = "tool_calls"
                out.append(chunk)
            yield out

    async def aclose(self) -> None:
        await self.inner.aclose()


