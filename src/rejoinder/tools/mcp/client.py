"""Talking to remote MCP servers (streamable HTTP, or SSE for URLs ending in ``/sse``).

Sessions are opened lazily, reused for every listing and call within one response, and closed
with a timeout when the response ends, so a stuck server cannot leak a session or a task.
Connecting (and listing tools) has a limit of its own, apart from a call's: a user who wants a
tool call cut short after half a second still wants a server that takes a second to accept its
first connection to be used.

Each connection lives in a task of its own that enters and exits the transport's context
managers. The MCP transports hold anyio task groups, whose cancel scopes must be exited by the
task that entered them; a response lists tools in the HTTP handler's task and runs calls and
closes in the engine's task, so without an owner task the close would fail (or a connect error
would surface as a bare ``CancelledError``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import ClientSession, types
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from rejoinder.tools.mcp.servers import McpServer

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0
_CLOSING: set[asyncio.Task[None]] = set()  # background closes, referenced until done


class McpUnavailable(Exception):
    """The server could not be reached or did not speak MCP."""


@dataclass
class McpResult:
    """A call's outcome: ``output`` text, or ``error`` shaped as the SDK's ``McpToolCallError``."""

    output: str | None
    error: dict[str, Any] | None


def _content_text(content: list[Any]) -> str:
    parts = []
    for block in content:
        text = getattr(block, "text", None)
        parts.append(text if text is not None else json.dumps(block.model_dump(mode="json", exclude_none=True)))
    return "\n".join(parts)


class _Connection:
    """One MCP session, owned by its own task from connect to close."""

    def __init__(self, server: McpServer, timeout: float, call_timeout: float):
        self.server = server
        self.timeout = timeout  # connecting and initializing
        self.call_timeout = call_timeout
        self.session: ClientSession | None = None
        self.error: BaseException | None = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._task = asyncio.create_task(self._own(), name=f"mcp:{server.server_label}")

    async def _own(self) -> None:
        try:
            async with AsyncExitStack() as stack:
                url = self.server.server_url
                if url.rstrip("/").endswith("/sse"):
                    streams = await stack.enter_async_context(
                        sse_client(url, headers=self.server.headers, timeout=self.timeout)
                    )
                else:
                    client = await stack.enter_async_context(httpx2.AsyncClient(
                        headers=self.server.headers,
                        timeout=httpx2.Timeout(self.timeout, read=max(self.timeout, self.call_timeout, 300.0)),
                    ))
                    streams = await stack.enter_async_context(streamable_http_client(url, http_client=client))
                # Each request is bounded by its caller (connect or call limit), never cut shorter here.
                session = await stack.enter_async_context(
                    ClientSession(streams[0], streams[1], read_timeout_seconds=max(self.timeout, self.call_timeout))
                )
                await session.initialize()
                self.session = session
                self._ready.set()
                await self._closing.wait()
        except BaseException as exc:  # a transport failure is reported to whoever waits for the session
            self.error = exc
            if not self._ready.is_set():
                log.info("MCP server %s unavailable: %r", self.server.server_label, exc)
        finally:
            self.session = None
            self._ready.set()

    async def ready(self) -> ClientSession:
        try:
            async with asyncio.timeout(self.timeout):
                await self._ready.wait()
        except TimeoutError:
            self._task.cancel()
            raise McpUnavailable(f"Timed out connecting to MCP server '{self.server.server_label}'.") from None
        if self.session is None:
            raise McpUnavailable(f"Error retrieving tool list from MCP server '{self.server.server_label}'.")
        return self.session

    async def close(self) -> None:
        self._closing.set()
        done, _ = await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT)
        if not done:
            log.warning("MCP session %s did not close in %ss; cancelling it", self.server.server_label,
                        CLOSE_TIMEOUT)
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT)


class McpSessions:
    """The MCP sessions of one response, one per ``server_label``. ``timeout`` bounds each tool
    call; ``connect_timeout`` connecting and listing tools."""

    def __init__(self, timeout: float, connect_timeout: float = 30.0):
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._connections: dict[str, _Connection] = {}

    async def _session(self, server: McpServer) -> ClientSession:
        conn = self._connections.get(server.server_label)
        if conn is None or (conn.error is not None and conn._ready.is_set()):
            conn = _Connection(server, self.connect_timeout, self.timeout)
            self._connections[server.server_label] = conn
        return await conn.ready()

    async def list_tools(self, server: McpServer) -> list[dict[str, Any]]:
        """The server's tools as ``mcp_list_tools`` entries; ``McpUnavailable`` when it cannot say."""
        session = await self._session(server)
        try:
            async with asyncio.timeout(self.connect_timeout):
                result = await session.list_tools()
        except Exception as exc:
            log.info("MCP server %s failed to list tools: %r", server.server_label, exc)
            raise McpUnavailable(f"Error retrieving tool list from MCP server '{server.server_label}'.") from exc
        tools = []
        for tool in result.tools:
            entry: dict[str, Any] = {"name": tool.name, "input_schema": tool.input_schema}
            if tool.description:
                entry["description"] = tool.description
            if tool.annotations is not None:
                entry["annotations"] = tool.annotations.model_dump(mode="json", exclude_none=True)
            tools.append(entry)
        return tools

    async def call_tool(self, server: McpServer, name: str, arguments: dict[str, Any]) -> McpResult:
        """Run one call. Every failure is a result with an error, never an exception: the loop goes on."""
        try:
            session = await self._session(server)
        except McpUnavailable as exc:
            return McpResult(None, {"type": "http_error", "code": 503, "message": str(exc)})
        request = types.CallToolRequest(params=types.CallToolRequestParams(name=name, arguments=arguments))
        try:
            async with asyncio.timeout(self.timeout):
                # Not ``session.call_tool``: on a session that has not listed tools it lists them
                # again to validate output schemas, which would defeat reusing the listing along a
                # previous_response_id chain (an extra round trip per call). The output is relayed
                # as the server sent it; judging it is the model's job.
                result = await session.send_request(request, types.CallToolResult)
        except TimeoutError:
            return McpResult(None, {"type": "mcp_protocol_error", "code": -32001,
                                    "message": f"Tool '{name}' timed out after {self.timeout:g}s."})
        except Exception as exc:
            log.info("MCP call %s.%s failed: %r", server.server_label, name, exc)
            error = getattr(exc, "error", None)
            code = getattr(error, "code", None)
            message = getattr(error, "message", None)
            return McpResult(None, {"type": "mcp_protocol_error",
                                    "code": code if isinstance(code, int) else -32603,
                                    "message": message if isinstance(message, str) else f"Tool '{name}' failed."})
        content = list(getattr(result, "content", None) or [])
        if getattr(result, "is_error", False):
            return McpResult(None, {"type": "mcp_tool_execution_error",
                                    "content": [c.model_dump(mode="json", exclude_none=True) for c in content]})
        text = _content_text(content)
        if not text and getattr(result, "structured_content", None) is not None:
            text = json.dumps(result.structured_content)
        return McpResult(text, None)

    def close_soon(self) -> None:
        """Close every session in the background: the response is already committed and sent, so
        terminating the sessions (a DELETE per server) need not delay the end of its stream."""
        if not self._connections:
            return
        task = asyncio.get_running_loop().create_task(self.aclose(), name="mcp-close")
        _CLOSING.add(task)
        task.add_done_callback(_CLOSING.discard)

    async def aclose(self) -> None:
        """Close every session; never raises, never waits more than a few seconds per server."""
        conns, self._connections = list(self._connections.values()), {}
        results = await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.warning("closing an MCP session failed: %r", result)
