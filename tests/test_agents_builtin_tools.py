"""The OpenAI Agents SDK's ShellTool and ApplyPatchTool against Rejoinder (issue 18): the SDK reads
the server's shell_call / apply_patch_call items, runs them with the user's executor and editor,
and sends their outputs back, which the model reads on the next step."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
from agents import (
    Agent,
    ApplyPatchTool,
    LocalShellTool,
    OpenAIResponsesModel,
    Runner,
    ShellTool,
    set_tracing_disabled,
)
from agents.editor import ApplyPatchOperation, ApplyPatchResult
from agents.tool import ShellCallOutcome, ShellCommandOutput, ShellCommandRequest, ShellResult

from tests.conftest import MODEL
from tests.fake_upstream import calls, text


class Editor:
    """Applies operations to a directory, as a user's editor would."""

    def __init__(self, root: Path):
        self.root = root
        self.operations: list[tuple[str, str, str | None]] = []

    def create_file(self, op: ApplyPatchOperation) -> ApplyPatchResult:
        self.operations.append(("create", op.path, op.diff))
        lines = [line[1:] for line in (op.diff or "").splitlines() if line.startswith("+")]
        (self.root / op.path).write_text("\n".join(lines) + "\n")
        return ApplyPatchResult(status="completed", output=f"Created {op.path}")

    def update_file(self, op: ApplyPatchOperation) -> ApplyPatchResult:
        self.operations.append(("update", op.path, op.diff))
        return ApplyPatchResult(status="completed", output=f"Updated {op.path}")

    def delete_file(self, op: ApplyPatchOperation) -> ApplyPatchResult:
        self.operations.append(("delete", op.path, None))
        return ApplyPatchResult(status="failed", output=f"{op.path}: no such file")


def _run(server: Any, tools: list[Any], prompt: str) -> Any:
    set_tracing_disabled(True)

    async def run() -> Any:
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=30)
        model = OpenAIResponsesModel(model=MODEL, openai_client=client)
        agent = Agent(name="dev", instructions="Be brief.", model=model, tools=tools)
        try:
            return await Runner.run(agent, prompt)
        finally:
            await client.close()

    return asyncio.run(run())


def test_shell_tool_runs_the_commands_the_model_asked_for(server, upstream):
    ran: list[list[str]] = []

    def execute(request: ShellCommandRequest) -> ShellResult:
        ran.append(list(request.data.action.commands))
        return ShellResult(output=[ShellCommandOutput(stdout="a.txt\nb.txt\n", outcome=ShellCallOutcome("exit", 0)),
                                   ShellCommandOutput(stderr="nope", outcome=ShellCallOutcome("exit", 2))])

    upstream.queue(calls(("shell", {"commands": ["ls", "cat missing"]})), text("Two files."))
    result = _run(server, [ShellTool(executor=execute)], "What is here?")
    assert result.final_output == "Two files."
    assert ran == [["ls", "cat missing"]]
    assert [t["function"]["name"] for t in upstream.requests[0]["tools"]] == ["shell"]
    tool_message = upstream.requests[-1]["messages"][-1]
    assert tool_message["role"] == "tool"
    assert "a.txt\nb.txt" in tool_message["content"] and "[exit code 0]" in tool_message["content"]
    assert "stderr:\nnope" in tool_message["content"] and "[exit code 2]" in tool_message["content"]


def test_apply_patch_tool_edits_files_through_the_users_editor(server, upstream, tmp_path):
    editor = Editor(tmp_path)
    upstream.queue(calls(("apply_patch", {"type": "create_file", "path": "hello.txt", "diff": "+hello\n+world\n"})),
                   calls(("apply_patch", {"type": "delete_file", "path": "gone.txt"})),
                   text("Done."))
    result = _run(server, [ApplyPatchTool(editor=editor)], "Create hello.txt, delete gone.txt")
    assert result.final_output == "Done."
    assert editor.operations == [("create", "hello.txt", "+hello\n+world\n"), ("delete", "gone.txt", None)]
    assert (tmp_path / "hello.txt").read_text() == "hello\nworld\n"
    messages = upstream.requests[-1]["messages"]
    results = [m["content"] for m in messages if m["role"] == "tool"]
    assert results == ["[completed]\nCreated hello.txt", "[failed]\ngone.txt: no such file"]


def test_local_shell_tool_runs_the_program_the_model_asked_for(server, upstream):
    ran: list[list[str]] = []

    def execute(request: Any) -> str:
        ran.append(list(request.data.action.command))
        return "Linux"

    upstream.queue(calls(("local_shell", {"command": ["uname", "-s"]})), text("It is Linux."))
    result = _run(server, [LocalShellTool(executor=execute)], "Which OS?")
    assert result.final_output == "It is Linux." and ran == [["uname", "-s"]]
    assert upstream.requests[-1]["messages"][-1]["content"] == "Linux"
