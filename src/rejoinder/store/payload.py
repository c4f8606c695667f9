"""Large payloads and the event loop: which writes may run inline, and encoding big rows.

A turn's short writes run on the event loop's thread (``db.py``): two thread hops cost more than
the ~50 µs transaction. A large payload must not: SQLite copies a 40 MB input into its pages in
~200 ms, during which the loop would serve nobody. On the writer thread SQLite releases the GIL
while it copies, and the loop goes on.

JSON encoding holds the GIL wherever it runs (orjson ~40 ms for 40 MB), so moving it to a thread
does not free the loop; it is done before the write transaction instead, so SQLite's write lock,
which every other writer waits for, is held only for the copy.
"""

from __future__ import annotations

from typing import Any

INLINE_MAX_CHARS = 64 * 1024  # more than this in strings and a write leaves the loop's thread


def small(*values: Any) -> bool:
    """Whether the strings in ``values`` add up to at most ``INLINE_MAX_CHARS``. Walks containers
    (stopping once the budget is spent) rather than encoding: a turn's rows are a few dicts."""
    budget = INLINE_MAX_CHARS
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            budget -= len(value)
            if budget < 0:
                return False
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return True
