"""One string field of a JSON object, decoded while the object streams in.

A custom tool is offered to a chat-completions model as a function whose only parameter is the
string ``input``; the model streams ``{"input": "*** Begin Patch\\n...`` and the client must see
the decoded text grow (``response.custom_tool_call_input.delta``), not the JSON around it.
"""

from __future__ import annotations

import json
import re

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class StringField:
    """Feed the arguments as they arrive; ``feed`` returns the newly decoded part of ``field``."""

    def __init__(self, field: str):
        self.raw = ""
        self._opening = re.compile(r'\s*\{\s*"' + re.escape(field) + r'"\s*:\s*"')
        self._pos: int | None = None  # where the undecoded rest of the string value starts in ``raw``
        self.closed = False
        self.text = ""

    def feed(self, chunk: str) -> str:
        self.raw += chunk
        if self.closed:
            return ""
        if self._pos is None:
            match = self._opening.match(self.raw)
            if match is None:
                return ""
            self._pos = match.end()
        out: list[str] = []
        raw, i = self.raw, self._pos
        while i < len(raw):
            ch = raw[i]
            if ch == '"':
                self.closed = True
                i += 1
                break
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            if i + 1 >= len(raw):
                break  # an escape split across chunks: wait for the rest
            esc = raw[i + 1]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                i += 2
            elif esc == "u":
                decoded, used = _unicode_escape(raw, i)
                if used == 0:
                    break
                out.append(decoded)
                i += used
            else:  # not JSON: kept as written; ``final`` sorts it out
                out.append(raw[i:i + 2])
                i += 2
        self._pos = i
        piece = "".join(out)
        self.text += piece
        return piece


def _unicode_escape(raw: str, i: int) -> tuple[str, int]:
    """``\\uXXXX`` (a surrogate pair as one character); (text, 0) when it is not all here yet."""
    if i + 6 > len(raw):
        return "", 0
    code = int(raw[i + 2:i + 6], 16) if re.fullmatch(r"[0-9a-fA-F]{4}", raw[i + 2:i + 6]) else None
    if code is None:
        return raw[i:i + 6], 6
    if 0xD800 <= code < 0xDC00:
        if i + 12 > len(raw):
            return "", 0
        low = raw[i + 6:i + 12]
        if re.fullmatch(r"\\u[dD][c-fC-F][0-9a-fA-F]{2}", low):
            return chr(0x10000 + ((code - 0xD800) << 10) + (int(low[2:], 16) - 0xDC00)), 12
    return chr(code), 6


def final_input(arguments: str, field: str = "input") -> str:
    """The whole input from the complete arguments: the field's string; a model that wrote some other
    JSON gets its only string value, or the JSON text itself; text that is not JSON is the input."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return arguments
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if isinstance(value.get(field), str):
            return str(value[field])
        strings = [v for v in value.values() if isinstance(v, str)]
        if len(value) == 1 and strings:
            return strings[0]
    return arguments
