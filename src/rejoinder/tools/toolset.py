"""The tools of one request: what the model is offered, and who runs each call.

Function tools are client-side: a call ends the turn. MCP tools are server-side: the engine lists
them, runs them and feeds the result back. A name the model invents is treated as a client-side
function call, never as an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rejoinder.errors import InvalidRequest


@dataclass
class McpServer:
    server_label: str
    server_url: str
    headers: dict[str, str] = field(default_factory=dict)
    allowed_tools: list[str] | None = None
    allowed_read_only: bool | None = None
    require_approval: Any = "always"

    @classmethod
    def from_tool(cls, tool: dict[str, Any]) -> McpServer:
        headers = dict(tool.get("headers") or {})
        if tool.get("authorization"):
            headers["Authorization"] = f"Bearer {tool['authorization']}"
        allowed = tool.get("allowed_tools")
        names: list[str] | None = None
        read_only = None
        if isinstance(allowed, list):
            names = list(allowed)
        elif isinstance(allowed, dict):
            names = allowed.get("tool_names")
            read_only = allowed.get("read_only")
        return cls(
            server_label=tool["server_label"],
            server_url=tool["server_url"],
            headers=headers,
            allowed_tools=names,
            allowed_read_only=read_only,
            require_approval=tool.get("require_approval") if tool.get("require_approval") is not None else "always",
        )

    def allows(self, tool: dict[str, Any]) -> bool:
        if self.allowed_tools is not None and tool["name"] not in self.allowed_tools:
            return False
        if self.allowed_read_only:
            annotations = tool.get("annotations") or {}
            return bool(annotations.get("readOnlyHint") or annotations.get("read_only"))
        return True

    def needs_approval(self, tool_name: str) -> bool:
        """``always`` / ``never`` / ``{always: {tool_names}, never: {tool_names}}``; unlisted tools need it."""
        policy = self.require_approval
        if policy == "never":
            return False
        if policy == "always" or not isinstance(policy, dict):
            return True
        never = (policy.get("never") or {}).get("tool_names") or []
        always = (policy.get("always") or {}).get("tool_names") or []
        if tool_name in always:
            return True
        if tool_name in never:
            return False
        return not (policy.get("never") and not policy.get("always"))


@dataclass
class ServerTool:
    """An MCP tool as the model sees it (``model_name``) and as the server knows it (``name``)."""

    model_name: str
    name: str
    server: McpServer
    description: str | None
    input_schema: dict[str, Any]


@dataclass
class Toolset:
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    servers: dict[str, McpServer] = field(default_factory=dict)
    server_tools: dict[str, ServerTool] = field(default_factory=dict)

    @classmethod
    def from_request(cls, tools: list[dict[str, Any]]) -> Toolset:
        ts = cls()
        for i, tool in enumerate(tools):
            kind = tool.get("type")
            if kind == "function":
                if tool["name"] in ts.functions:
                    raise InvalidRequest(f"Duplicate function tool name '{tool['name']}'.", param=f"tools[{i}].name")
                ts.functions[tool["name"]] = tool
            elif kind == "mcp":
                label = tool["server_label"]
                if label in ts.servers:
                    raise InvalidRequest(f"Duplicate MCP server_label '{label}'.", param=f"tools[{i}].server_label")
                if not tool.get("server_url"):
                    raise InvalidRequest("MCP tools need a server_url (connectors are not supported).",
                                         param=f"tools[{i}].server_url")
                ts.servers[label] = McpServer.from_tool(tool)
        return ts

    def add_listing(self, server_label: str, tools: list[dict[str, Any]]) -> None:
        """Register the tools an ``mcp_list_tools`` item names, as the model will see them."""
        server = self.servers[server_label]
        for tool in tools:
            if not server.allows(tool):
                continue
            model_name = tool["name"]
            if model_name in self.functions or model_name in self.server_tools:
                model_name = f"{server_label}__{tool['name']}"
            self.server_tools[model_name] = ServerTool(
                model_name=model_name, name=tool["name"], server=server, description=tool.get("description"),
                input_schema=tool.get("input_schema") or {"type": "object", "properties": {}},
            )

    def model_names(self) -> dict[tuple[str, str], str]:
        return {(t.server.server_label, t.name): t.model_name for t in self.server_tools.values()}

    def chat_tools(self, only: set[str] | None = None) -> list[dict[str, Any]]:
        """Backend tool definitions, built explicitly with nulls dropped (``strict: null`` is refused)."""
        out: list[dict[str, Any]] = []
        for name, tool in self.functions.items():
            if only is not None and name not in only:
                continue
            fn: dict[str, Any] = {"name": name}
            if tool.get("description") is not None:
                fn["description"] = tool["description"]
            if tool.get("parameters") is not None:
                fn["parameters"] = tool["parameters"]
            if tool.get("strict") is not None:
                fn["strict"] = tool["strict"]
            out.append({"type": "function", "function": fn})
        for name, st in self.server_tools.items():
            if only is not None and name not in only:
                continue
            fn = {"name": name, "parameters": st.input_schema}
            if st.description:
                fn["description"] = st.description
            out.append({"type": "function", "function": fn})
        return out


def resolve_tool_choice(choice: Any, toolset: Toolset) -> tuple[Any, set[str] | None]:
    """The upstream ``tool_choice`` (None: leave it out) and the subset of tools to offer."""
    if choice is None or choice == "auto":
        return None, None
    if choice == "none":
        return "none", set()
    if choice == "required":
        return "required", None
    kind = choice.get("type")
    if kind == "function":
        name = choice["name"]
        if name not in toolset.functions:
            raise InvalidRequest(f"Tool choice '{name}' is not one of the function tools.", param="tool_choice")
        return {"type": "function", "function": {"name": name}}, None
    if kind == "mcp":
        label = choice["server_label"]
        names = {n for n, t in toolset.server_tools.items() if t.server.server_label == label}
        if choice.get("name"):
            names = {n for n in names if toolset.server_tools[n].name == choice["name"]}
        if not names:
            raise InvalidRequest("Tool choice names no MCP tool of the request.", param="tool_choice")
        if len(names) == 1:
            return {"type": "function", "function": {"name": next(iter(names))}}, None
        return "required", names
    if kind == "allowed_tools":
        allowed: set[str] = set()
        for t in choice.get("tools") or []:
            if t.get("type") == "function":
                allowed.add(t["name"])
            elif t.get("type") == "mcp":
                allowed |= {n for n, st in toolset.server_tools.items()
                            if st.server.server_label == t.get("server_label")
                            and (not t.get("name") or st.name == t.get("name"))}
        mode = choice.get("mode", "auto")
        return ("required" if mode == "required" else None), allowed
    raise InvalidRequest(f"Unsupported tool_choice type '{kind}'.", param="tool_choice")
