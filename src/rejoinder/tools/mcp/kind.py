"""MCP tools (``{"type": "mcp", "server_label", "server_url", ...}``): executed by the server.

A server's tools are listed once (an ``mcp_list_tools`` item, reused along a
``previous_response_id`` chain or a conversation), offered to the model under legal, unique names,
and run when the model calls them; ``require_approval`` turns a call into an
``mcp_approval_request`` that ends the turn, and an approving ``mcp_approval_response`` runs it
before the model is asked again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rejoinder.engine.events import Event
from rejoinder.errors import FailedDependency, InvalidRequest
from rejoinder.item_types import ItemType, ReplayCall, Replayed, ReplayScope
from rejoinder.tools.interface import (
    MAX_NAME,
    CallEnv,
    ModelCall,
    Names,
    Offer,
    Preparation,
    ToolGroup,
    ToolKind,
    ToolSetup,
    legal_name,
)
from rejoinder.tools.mcp.calls import ApprovalCall, McpCall, McpTool, listing_events
from rejoinder.tools.mcp.client import McpSessions, McpUnavailable
from rejoinder.tools.mcp.servers import McpServer, refuse_unsupported

DENIED_TEXT = "The user denied this tool call."


def _result_text(item: dict[str, Any]) -> str:
    if item.get("error"):
        err = item["error"]
        if isinstance(err, dict):
            return "Error: " + str(err.get("message") or err.get("content") or json.dumps(err))
        return f"Error: {err}"
    return item.get("output") or ""


def _replay_call(item: dict[str, Any], scope: ReplayScope) -> Replayed:
    name = scope.name(item["server_label"], item["name"])
    return ReplayCall(item["id"], name, item.get("arguments", ""), _result_text(item))


def _replay_request(item: dict[str, Any], scope: ReplayScope) -> Replayed:
    scope.notes[item["id"]] = item  # a denial, later, reads as this call answered "denied"
    return None


def _replay_response(item: dict[str, Any], scope: ReplayScope) -> Replayed:
    request = scope.notes.get(item["approval_request_id"])
    if item.get("approve") or request is None:
        return None  # an approved call is replayed by its mcp_call
    name = scope.name(request["server_label"], request["name"])
    return ReplayCall(request["id"], name, request.get("arguments", ""), DENIED_TEXT)


class McpOffer(Offer):
    def __init__(self, tool: McpTool, sessions: McpSessions):
        self.name = tool.model_name
        self.tool = tool
        self.sessions = sessions

    def chat_tool(self) -> dict[str, Any]:
        fn: dict[str, Any] = {"name": self.name, "parameters": self.tool.input_schema}
        if self.tool.description:
            fn["description"] = self.tool.description
        return {"type": "function", "function": fn}

    def on_server(self) -> bool:
        return not self.tool.needs_approval()

    def begin(self, env: CallEnv, call_id: str) -> tuple[ModelCall, list[Event]]:
        if self.tool.needs_approval():
            return ApprovalCall(env.state, self.tool), []  # its item comes once the step ends
        call = McpCall(env.state, env.observer, self.sessions, self.tool, self.tool.server.server_label,
                       self.tool.name)
        return call, [call.added]


class McpGroup(ToolGroup):
    """The MCP servers of one request, their listed tools and the request's MCP sessions."""

    def __init__(self, kind: McpKind, declarations: list[tuple[str, dict[str, Any]]], names: Names,
                 timeout: float, connect_timeout: float = 30.0):
        self.kind = kind
        self.names = names
        self.servers: dict[str, McpServer] = {}
        self.tools: dict[str, McpTool] = {}  # by model-facing name
        for param, tool in declarations:
            label = tool["server_label"]
            if label in self.servers:
                raise InvalidRequest(f"Duplicate MCP server_label '{label}'.", param=f"{param}.server_label")
            refuse_unsupported(tool, param)
            self.servers[label] = McpServer.from_tool(tool)
        self.sessions = McpSessions(timeout, connect_timeout)
        self.fresh: dict[str, list[dict[str, Any]]] = {}  # label -> tools, listed for this response
        self.approved: list[dict[str, Any]] = []  # approval requests this turn's input approved

    # -- preparing ---------------------------------------------------------------------------

    def read_input(self, prep: Preparation) -> None:
        """Approvals answer requests of the context; the approved ones not yet run run first."""
        known = prep.known
        approved = []
        for i, item in enumerate(prep.input_items):
            if item["type"] != "mcp_approval_response":
                continue
            request = known.get(item["approval_request_id"])
            if request is None or request.get("type") != "mcp_approval_request":
                raise InvalidRequest(
                    f"No approval request found with id '{item['approval_request_id']}'.",
                    param=f"input[{i}].approval_request_id", code="invalid_approval_response",
                )
            if item.get("approve"):
                approved.append(request)
        already_run = {c.get("approval_request_id") for c in known.values() if c.get("type") == "mcp_call"}
        self.approved = [r for r in approved if r["id"] not in already_run]

    async def prepare(self, prep: Preparation) -> None:
        """Each server's tools: from the context's latest listing, the job's kept one, or listed now."""
        items = prep.items
        kept = prep.kept or {}
        for label, server in self.servers.items():
            earlier = [i for i in reversed(items)
                       if i.get("type") == "mcp_list_tools" and i.get("server_label") == label and not i.get("error")]
            if earlier:
                self.add_listing(label, earlier[0]["tools"])
                continue
            if label in kept:
                tools = kept[label]
            else:
                try:
                    tools = await self.sessions.list_tools(server)
                except McpUnavailable as exc:
                    raise FailedDependency(str(exc), param="tools", code="http_error") from exc
            self.fresh[label] = tools
            self.add_listing(label, tools)

    def add_listing(self, server_label: str, tools: list[dict[str, Any]]) -> None:
        """Register the tools an ``mcp_list_tools`` item names, as the model will see them."""
        server = self.servers[server_label]
        for tool in tools:
            if not server.allows(tool):
                continue
            model_name = self.names.claim(self._free_name(server_label, tool["name"]))
            self.tools[model_name] = McpTool(
                model_name=model_name, name=tool["name"], server=server, description=tool.get("description"),
                input_schema=tool.get("input_schema") or {"type": "object", "properties": {}},
                annotations=tool.get("annotations"),
            )

    def _free_name(self, server_label: str, name: str) -> str:
        """The name the model sees for an MCP tool: a legal function name (``[a-zA-Z0-9_-]{1,64}``,
        what OpenAI-compatible backends accept) that no other tool of the request uses. A clash is
        settled with ``label__name``; a name still too long or taken gets a stable hash suffix."""
        plain = legal_name(name) or "tool"
        if len(plain) <= MAX_NAME and plain not in self.names.taken:
            return plain
        return self.names.qualified(
            server_label, name, f"MCP server '{server_label}' lists tool names that cannot be told apart.")

    def find(self, server_label: str, name: str) -> McpTool | None:
        """The offered tool ``name`` of ``server_label`` (None: not in this request, or not allowed)."""
        return next((t for t in self.tools.values() if t.server.server_label == server_label and t.name == name),
                    None)

    # -- offering ----------------------------------------------------------------------------

    def offers(self) -> Sequence[Offer]:
        return [McpOffer(tool, self.sessions) for tool in self.tools.values()]

    def _names_of(self, label: Any, name: Any) -> set[str]:
        return {n for n, t in self.tools.items() if t.server.server_label == label and (not name or t.name == name)}

    def choose(self, choice: dict[str, Any], param: str, allowed: bool) -> set[str]:
        label = choice.get("server_label")
        if label not in self.servers:
            message = (f"Allowed MCP server '{label}' not found in 'tools'." if allowed
                       else f"Tool choice names MCP server '{label}', which is not in 'tools'.")
            raise InvalidRequest(message, param=f"{param}.server_label", code="invalid_value")
        names = self._names_of(label, choice.get("name"))
        if not names and not allowed:
            raise InvalidRequest(f"Tool choice names no tool of MCP server '{label}'.", param=f"{param}.name",
                                 code="invalid_value")
        return names

    def aliases(self) -> dict[tuple[str, str], str]:
        return {(t.server.server_label, t.name): t.model_name for t in self.tools.values()}

    # -- the response's head and approved calls ----------------------------------------------

    def head(self, env: CallEnv) -> list[Event]:
        events: list[Event] = []
        for label, tools in self.fresh.items():
            events += listing_events(env.state, label, tools)
        return events

    @property
    def resumes(self) -> bool:
        return bool(self.approved)

    def resumed(self, env: CallEnv) -> tuple[list[Event], list[ModelCall]]:
        events: list[Event] = []
        calls: list[ModelCall] = []
        for request in self.approved:
            label, name = request["server_label"], request["name"]
            call = McpCall(env.state, env.observer, self.sessions, self.find(label, name), label, name,
                           approval_request_id=request["id"])
            events.append(call.added)
            if request.get("arguments"):
                events += call.delta(request["arguments"])
            events += call.done()
            calls.append(call)
        return events, calls

    def kept(self) -> Any:
        return self.fresh or None

    def close_soon(self) -> None:
        self.sessions.close_soon()

    async def aclose(self) -> None:
        await self.sessions.aclose()


class McpKind(ToolKind):
    type = "mcp"
    on_server = True
    choice_types = ("mcp",)
    item_types = (
        ItemType("mcp_list_tools", "mcpl"),
        ItemType("mcp_call", "mcp", _replay_call),
        ItemType("mcp_approval_request", "mcpr", _replay_request),
        ItemType("mcp_approval_response", "mcpa", _replay_response),
    )

    def group(self, declarations: list[tuple[str, dict[str, Any]]], names: Names, setup: ToolSetup) -> ToolGroup:
        return McpGroup(self, declarations, names, setup.settings.mcp_timeout, setup.settings.mcp_connect_timeout)
