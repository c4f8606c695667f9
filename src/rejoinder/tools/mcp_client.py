"""Talking to remote MCP servers (streamable HTTP, or SSE for URLs ending in ``/sse``).

Sessions are opened lazily, reused for every listing and call within one response, and closed
with a timeout when the response ends, so a stuck server cannot leak a session or a task.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from rejoinder.tools.toolset import McpServer

log = logging.getLogger(__name__)


class McpUnavailable(Exception):
    """The server could not be reached or did not speak MCP."""


@dataclass
class McpResult:
    output: str | None
    error: dict[str, Any] | None


def _content_text(content: list[Any]) -> str:
    parts = []
    for block in content:
        text = getattr(block, "text", None)
        parts.append(text if text is not None else json.dumps(block.model_dump(mode="json", exclude_none=True)))
    return "\n".join(parts)


class McpSessions:
    """The MCP sessions of one response."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._stack = AsyncExitStack()
        self._sessions: dict[str, ClientSession] = {}
        self._lock = asyncio.Lock()

    async def _session(self, server: McpServer) -> ClientSession:
        async with self._lock:
            session = self._sessions.get(server.server_label)
            if session is not None:
                return session
            try:
                async with asyncio.timeout(self.timeout):
                    if server.server_url.rstrip("/").endswith("/sse"):
                        streams = await self._stack.enter_async_context(
                            sse_client(server.server_url, headers=server.headers, timeout=self.timeout)
                        )
                    else:
                        client = await self._stack.enter_async_context(
                            httpx2.AsyncClient(headers=server.headers, timeout=self.timeout, follow_redirects=True)
                        )
                        streams = await self._stack.enter_async_context(
                            streamable_http_client(server.server_url, http_client=client)
                        )
                    session = await self._stack.enter_async_context(
                        ClientSession(streams[0], streams[1], read_timeout_seconds=self.timeout)
                    )
                    await session.initialize()
            except Exception as exc:
                log.info("MCP server %s unavailable: %r", server.server_label, exc)
                raise McpUnavailable(f"Error retrieving tool list from MCP server '{server.server_label}'.") from exc
            self._sessions[server.server_label] = session
            return session

    async def list_tools(self, server: McpServer) -> list[dict[str, Any]]:
        session = await self._session(server)
        try:
            async with asyncio.timeout(self.timeout):
                result = await session.list_tools()
        except Exception as exc:
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
        try:
            session = await self._session(server)
            async with asyncio.timeout(self.timeout):
                result = await session.call_tool(name, arguments)
        except McpUnavailable as exc:
            return McpResult(None, {"type": "http_error", "code": 503, "message": str(exc)})
        except TimeoutError:
            return McpResult(None, {"type": "mcp_protocol_error", "code": -32001,
                                    "message": f"Tool '{name}' timed out after {self.timeout:g}s."})
        except Exception as exc:
            code = getattr(getattr(exc, "error", None), "code", -32603)
            message = getattr(getattr(exc, "error", None), "message", None) or f"Tool '{name}' failed."
            return McpResult(None, {"type": "mcp_protocol_error", "code": int(code), "message": message})
        content = getattr(result, "content", None) or []
        text = _content_text(content)
        if getattr(result, "is_error", False):
            return McpResult(None, {"type": "mcp_tool_execution_error",
                                    "content": [c.model_dump(mode="json", exclude_none=True) for c in content]})
        if not text and getattr(result, "structured_content", None) is not None:
            text = json.dumps(result.structured_content)
        return McpResult(text, None)

    async def aclose(self) -> None:
        try:
            async with asyncio.timeout(5):
                await self._stack.aclose()
        except BaseException as exc:  # never let a stuck server hang or crash the response
            log.warning("closing MCP sessions failed: %r", exc)
