"""Client calls whose item is made only once the whole call is known to be right.

A built-in tool's call (shell, apply_patch, local_shell, tool_search) must fill the SDK's item
type, and a custom tool with a grammar must match it: a call that does not would break the
client (Codex refuses an apply_patch it cannot parse). Such a call is held until its arguments
are complete and checked. A call that fails the check never reaches the client: the model reads
its own call and what is wrong with it on the next step (``retry_messages``) and tries again, at
most ``ATTEMPTS`` times in one response; then the response fails with a message that says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from rejoinder.engine.events import Event
from rejoinder.errors import BackendError
from rejoinder.tools.interface import CallEnv, ModelCall

ATTEMPTS = 3  # calls the model makes before a response with a call that stays wrong fails

# (arguments) -> (the item's fields, None) or (None, what is wrong with the call)
Check = Callable[[str], tuple[dict[str, Any] | None, str | None]]
# (the item's output index) -> the events between ``output_item.added`` and ``output_item.done``
Events = Callable[[int], list[Event]]


class Attempts:
    """The failed calls of one response, counted per tool."""

    def __init__(self) -> None:
        self.failed: dict[str, int] = {}

    def fail(self, tool: str) -> int:
        self.failed[tool] = self.failed.get(tool, 0) + 1
        return self.failed[tool]


class CheckedCall(ModelCall):
    """One held call. ``check`` turns the complete arguments into the item, or says what is wrong."""

    def __init__(self, env: CallEnv, call_id: str, name: str, check: Check, attempts: Attempts,
                 events: Events | None = None):
        self.env = env
        self.call_id = call_id
        self.name = name  # as the model sees it
        self.check = check
        self.attempts = attempts
        self.events = events
        self.arguments = ""
        self.problem: str | None = None
        self.exhausted = False

    def delta(self, text: str) -> list[Event]:
        self.arguments += text
        return []

    def done(self) -> list[Event]:
        item, problem = self.check(self.arguments)
        if item is None:
            self.problem = problem or "the call is malformed."
            self.on_server = True  # nothing for the client: the loop goes on, and the model retries
            self.exhausted = self.attempts.fail(self.name) >= ATTEMPTS
            return []
        index, added = self.env.state.add_item(item)
        self.index = index
        middle = self.events(index) if self.events is not None else []
        return [added, *middle, self.env.state.item_done(index)]

    def retry_messages(self) -> list[dict[str, Any]]:
        if self.problem is None:
            return []
        call = {"id": self.call_id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments or "{}"}}
        return [{"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": self.call_id,
                 "content": f"Error: this call of {self.name} was not made: {self.problem} Call {self.name} "
                            "again with corrected arguments."}]

    def retry_choice(self) -> dict[str, Any] | None:
        return {"type": "function", "function": {"name": self.name}} if self.problem is not None else None

    async def run(self) -> AsyncIterator[list[Event]]:
        """Nothing to run: the next step retries. Out of attempts, the response fails."""
        if self.exhausted:
            raise BackendError(f"The model did not make a valid call of the tool '{self.name}' in {ATTEMPTS} "
                               f"attempts; the last one was refused because {self.problem}", "server_error")
        nothing: tuple[list[Event], ...] = ()
        for batch in nothing:  # an async generator that yields no events
            yield batch
