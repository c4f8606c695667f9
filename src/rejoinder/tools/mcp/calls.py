"""MCP's items and their events: ``mcp_list_tools``, ``mcp_call`` (run by the server) and
``mcp_approval_request`` (the client decides, the turn ends)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from openai.types import responses as T

from rejoinder.engine.events import Event, ResponseState
from rejoinder.ids import new_item_id
from rejoinder.observability.hooks import RunObserver
from rejoinder.tools.interface import ModelCall
from rejoinder.tools.mcp.client import McpResult, McpSessions
from rejoinder.tools.mcp.servers import McpServer


@dataclass
class McpTool:
    """An MCP tool as the model sees it (``model_name``) and as the server knows it (``name``)."""

    model_name: str
    name: str
    server: McpServer
    description: str | None
    input_schema: dict[str, Any]
    annotations: dict[str, Any] | None = None

    def needs_approval(self) -> bool:
        return self.server.needs_approval(self.name, self.annotations)


def listing_events(state: ResponseState, server_label: str, tools: list[dict[str, Any]]) -> list[Event]:
    """An ``mcp_list_tools`` item, listed while the response was prepared, from start to done."""
    item: dict[str, Any] = {"id": new_item_id("mcp_list_tools"), "type": "mcp_list_tools",
                            "server_label": server_label, "tools": []}
    index, added = state.add_item(item)
    progress = state.item_event(T.ResponseMcpListToolsInProgressEvent, "response.mcp_list_tools.in_progress", index)
    item["tools"] = tools
    completed = state.item_event(T.ResponseMcpListToolsCompletedEvent, "response.mcp_list_tools.completed", index)
    return [added, progress, completed, state.item_done(index)]


class McpCall(ModelCall):
    """An ``mcp_call``: its arguments stream, then the server calls the tool."""

    on_server = True

    def __init__(self, state: ResponseState, observer: RunObserver, sessions: McpSessions, tool: McpTool | None,
                 server_label: str, name: str, approval_request_id: str | None = None):
        self.state = state
        self.observer = observer
        self.sessions = sessions
        self.tool = tool  # None: approved earlier, but no longer offered by this request
        item: dict[str, Any] = {"id": new_item_id("mcp_call"), "type": "mcp_call", "server_label": server_label,
                                "name": name, "arguments": "", "status": "in_progress", "output": None,
                                "error": None}
        if approval_request_id:
            item["approval_request_id"] = approval_request_id
        self.index, self.added = state.add_item(item)

    def delta(self, text: str) -> list[Event]:
        self.state.output[self.index]["arguments"] += text
        return [self.state.item_event(T.ResponseMcpCallArgumentsDeltaEvent, "response.mcp_call_arguments.delta",
                                      self.index, delta=text)]

    def done(self) -> list[Event]:
        item = self.state.output[self.index]
        if not item["arguments"]:
            item["arguments"] = "{}"
        return [
            self.state.item_event(T.ResponseMcpCallArgumentsDoneEvent, "response.mcp_call_arguments.done",
                                  self.index, arguments=item["arguments"]),
            self.state.item_event(T.ResponseMcpCallInProgressEvent, "response.mcp_call.in_progress", self.index),
        ]

    async def run(self) -> AsyncIterator[list[Event]]:
        item = self.state.output[self.index]
        result = await self._call(item["arguments"], item["server_label"])
        if result.error is None:
            item.update(status="completed", output=result.output)
            end = self.state.item_event(T.ResponseMcpCallCompletedEvent, "response.mcp_call.completed", self.index)
        else:
            item.update(status="failed", error=result.error)
            end = self.state.item_event(T.ResponseMcpCallFailedEvent, "response.mcp_call.failed", self.index)
        yield [end, self.state.item_done(self.index)]

    async def _call(self, arguments: str, label: str) -> McpResult:
        tool = self.tool
        if tool is None:
            return McpResult(None, {"type": "mcp_protocol_error", "code": -32602,
                                    "message": f"The tool is not offered by MCP server '{label}' in this request."})
        try:
            args = json.loads(arguments or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError:
            return McpResult(None, {"type": "mcp_protocol_error", "code": -32602,
                                    "message": "The tool arguments are not a valid JSON object."})
        with self.observer.tool_call("mcp", tool.name) as observed:
            result = await self.sessions.call_tool(tool.server, tool.name, args)
            if result.error is not None:
                observed.failed(str(result.error.get("type", "error")))
        return result


class ApprovalCall(ModelCall):
    """A call to a tool that needs the client's approval: once the step ends, an
    ``mcp_approval_request`` item; the client answers with an ``mcp_approval_response``."""

    def __init__(self, state: ResponseState, tool: McpTool):
        self.state = state
        self.tool = tool
        self.arguments = ""

    def delta(self, text: str) -> list[Event]:
        self.arguments += text
        return []

    def end_of_step(self) -> list[Event]:
        item = {"id": new_item_id("mcp_approval_request"), "type": "mcp_approval_request",
                "server_label": self.tool.server.server_label, "name": self.tool.name,
                "arguments": self.arguments or "{}"}
        self.index, added = self.state.add_item(item)
        return [added, self.state.item_done(self.index)]
