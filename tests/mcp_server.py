"""A real MCP server for tests: the recording's workflow tools over streamable HTTP (and SSE).

Register it with ``pytest_plugins = ["tests.mcp_server"]`` (tests/conftest.py does). Fixtures:
``mcp_server`` (session; the streamable-HTTP URL), ``mcp_sse_server`` (session; the SSE URL) and
``mcp_log`` (what the servers saw, cleared for each test that asks for it). Besides the workflow
tools there is ``explode`` (raises), ``slow`` (sleeps, for timeouts) and ``whoami`` (echoes the
``Authorization`` header, to check that ``headers`` / ``authorization`` reach the server).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from mcp.server.mcpserver import Context, MCPServer

from tests.fake_upstream import ThreadServer, Turn, calls, text

USER_IDS = {"alice": "user_12345", "bob": "user_67890", "charlie": "user_11111"}
PERMISSIONS = {"user_12345": "admin", "user_67890": "user", "user_11111": "guest"}
EXPERIMENT_IDS = {"chemistry": "exp_003", "physics": "exp_004"}
EXPERIMENT_RESULTS = {"exp_003": "Yield: 85%", "exp_004": "Yield: 92%"}
WORKFLOW_TOOLS = ("get_user_id", "get_user_permissions", "check_file_access", "get_experiment_id",
                  "get_experiment_results")


@dataclass
class McpLog:
    """Requests the test MCP servers handled, in arrival order (thread-safe appends)."""

    list_calls: int = 0
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    running: int = 0  # ``slow`` calls in flight
    max_running: int = 0  # the most ``slow`` calls ever in flight at once
    list_delay: float = 0.0  # seconds each tool listing takes (a server slow to answer)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self._lock:
            self.list_calls = 0
            self.tool_calls.clear()
            self.headers.clear()
            self.running = self.max_running = 0
            self.list_delay = 0.0

    def called(self) -> list[str]:
        return [name for name, _ in self.tool_calls]


class RecordingMCPServer(MCPServer):
    """An MCPServer that records every listing and call it serves."""

    def __init__(self, log: McpLog, **kwargs: Any):
        super().__init__(**kwargs)
        self.log = log

    async def list_tools(self) -> Any:
        with self.log._lock:
            self.log.list_calls += 1
        if self.log.list_delay:
            await asyncio.sleep(self.log.list_delay)
        return await super().list_tools()

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        with self.log._lock:
            self.log.tool_calls.append((name, dict(arguments)))
        return await super().call_tool(name, arguments, context)


def build_server(log: McpLog) -> RecordingMCPServer:
    server = RecordingMCPServer(log, name="rejoinder-test-tools")

    @server.tool()
    def get_user_id(username: str) -> str:
        """Get the user ID for a given username. This ID is needed for other operations."""
        return USER_IDS.get(username, "unknown")

    @server.tool()
    def get_user_permissions(user_id: str) -> str:
        """Get the permissions for a user ID. Requires a valid user ID from get_user_id."""
        return PERMISSIONS.get(user_id, "none")

    @server.tool()
    def check_file_access(user_id: str, filename: str) -> str:
        """Check if a user can access a specific file. Requires a valid user ID."""
        if filename.startswith("secret") and PERMISSIONS.get(user_id) != "admin":
            return "no"
        return "yes" if user_id in PERMISSIONS else "no"

    @server.tool()
    def get_experiment_id(experiment_name: str) -> str:
        """Get the experiment ID for a given experiment name. This ID is needed to get results."""
        return EXPERIMENT_IDS.get(experiment_name, "unknown")

    @server.tool()
    def get_experiment_results(experiment_id: str) -> str:
        """Get the results for an experiment ID. Requires a valid experiment ID from get_experiment_id."""
        return EXPERIMENT_RESULTS.get(experiment_id, "no results")

    @server.tool()
    def explode(reason: str) -> str:
        """Always fails, to test how a tool error reaches the model."""
        raise RuntimeError(f"kaboom: {reason}")

    @server.tool()
    async def slow(seconds: float) -> str:
        """Sleeps before answering, to test call timeouts and that calls overlap."""
        with log._lock:
            log.running += 1
            log.max_running = max(log.max_running, log.running)
        try:
            await asyncio.sleep(seconds)
        finally:
            with log._lock:
                log.running -= 1
        return f"slept {seconds}"

    @server.tool()
    def whoami(ctx: Context) -> str:
        """Echoes the Authorization header the caller sent."""
        headers = {k.lower(): v for k, v in (ctx.headers or {}).items()}
        with log._lock:
            log.headers.append(headers)
        return headers.get("authorization", "anonymous")

    return server


def run_tool(name: str, args: dict[str, Any]) -> str:
    """The workflow tools run client-side: the same answers the MCP server gives."""
    if name == "get_user_id":
        return USER_IDS.get(args["username"], "unknown")
    if name == "get_user_permissions":
        return PERMISSIONS.get(args["user_id"], "none")
    if name == "check_file_access":
        if args["filename"].startswith("secret") and PERMISSIONS.get(args["user_id"]) != "admin":
            return "no"
        return "yes" if args["user_id"] in PERMISSIONS else "no"
    if name == "get_experiment_id":
        return EXPERIMENT_IDS.get(args["experiment_name"], "unknown")
    if name == "get_experiment_results":
        return EXPERIMENT_RESULTS.get(args["experiment_id"], "no results")
    raise KeyError(name)


def _schema(**props: str) -> dict[str, Any]:
    return {"type": "object", "properties": {k: {"type": "string", "title": t} for k, t in props.items()},
            "required": list(props)}


# The recording's tools as Responses API function tools.
FUNCTION_TOOLS: list[dict[str, Any]] = [
    {"type": "function", "name": "get_user_id", "description": "Get the user ID for a given username.",
     "parameters": _schema(username="Username")},
    {"type": "function", "name": "get_user_permissions", "description": "Get the permissions for a user ID.",
     "parameters": _schema(user_id="User Id")},
    {"type": "function", "name": "check_file_access", "description": "Check if a user can access a file.",
     "parameters": _schema(user_id="User Id", filename="Filename")},
    {"type": "function", "name": "get_experiment_id", "description": "Get the experiment ID for a name.",
     "parameters": _schema(experiment_name="Experiment Name")},
    {"type": "function", "name": "get_experiment_results", "description": "Get the results for an experiment.",
     "parameters": _schema(experiment_id="Experiment Id")},
]
SECURITY_PROMPT = ("First, get the user ID for 'charlie', then get the permissions for that user ID, and finally "
                   "check if that user can access 'secret_file.txt'. Return only one tool call per step.")
EXPERIMENT_PROMPT = "Get the experiment ID for 'chemistry', then get the results for that experiment."


def tool_results(body: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(name, arguments, result) of every answered tool call in a chat request, in order."""
    called: dict[str, tuple[str, str]] = {}
    for m in body["messages"]:
        for tc in m.get("tool_calls") or []:
            called[tc["id"]] = (tc["function"]["name"], tc["function"]["arguments"])
    out = []
    for m in body["messages"]:
        if m["role"] == "tool":
            name, raw = called[m["tool_call_id"]]
            try:
                args = json.loads(raw)
            except ValueError:
                args = {}
            out.append((name, args, m["content"]))
    return out


def workflow_model(body: dict[str, Any]) -> Turn:
    """A scripted model for the recording's two workflows: it reads the last tool result and makes
    the next call, one call per step, then answers with the final result."""
    offered = {t["function"]["name"] for t in body.get("tools") or []}
    results = tool_results(body)
    first_user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    experiment = "experiment" in json.dumps(first_user)
    last = results[-1] if results else None
    if experiment:
        if last is None:
            step: tuple[str, dict[str, Any]] | None = ("get_experiment_id", {"experiment_name": "chemistry"})
        elif last[0] == "get_experiment_id":
            step = ("get_experiment_results", {"experiment_id": last[2]})
        else:
            step = None
    else:
        user_id = next((r for n, _, r in results if n == "get_user_id"), None)
        if last is None:
            step = ("get_user_id", {"username": "charlie"})
        elif last[0] == "get_user_id":
            step = ("get_user_permissions", {"user_id": last[2]})
        elif last[0] == "get_user_permissions":
            step = ("check_file_access", {"user_id": user_id, "filename": "secret_file.txt"})
        else:
            step = None
    if step is None or step[0] not in offered:
        return text(f"Result: {last[2] if last else 'nothing'}")
    return calls(step)


_LOG = McpLog()


@pytest.fixture(scope="session")
def mcp_server() -> Iterator[str]:
    """URL of a streamable-HTTP MCP server on loopback serving the test tools."""
    app = build_server(_LOG).streamable_http_app()
    with ThreadServer(app) as running:
        yield running.url + "/mcp"


@pytest.fixture(scope="session")
def mcp_sse_server() -> Iterator[str]:
    """URL (ending in ``/sse``) of the same tools over the older SSE transport."""
    app = build_server(_LOG).sse_app()
    with ThreadServer(app) as running:
        yield running.url + "/sse"


@pytest.fixture
def mcp_log() -> McpLog:
    """What the MCP servers saw during this test."""
    _LOG.reset()
    return _LOG
