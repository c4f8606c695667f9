"""The tools of one request: what the model is offered, and who runs each call.

Function tools are client-side: a call ends the turn. MCP tools are server-side: the engine lists
them, runs them and feeds the result back. A name the model invents is treated as a client-side
function call, never as an error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

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
        if self.allowed_read_only is not None:
            return _is_read_only(tool.get("annotations")) == self.allowed_read_only
        return True

    def needs_approval(self, tool_name: str, annotations: dict[str, Any] | None = None) -> bool:
        """``always`` / ``never`` / ``{always: filter, never: filter}``.

        A filter matches by ``tool_names`` or, with ``read_only: true``, by the tool's
        ``readOnlyHint``. ``always`` wins over ``never``; a tool neither filter matches needs
        approval, as OpenAI's default (``always``) asks.
        """
        policy = self.require_approval
        if policy == "never":
            return False
        if not isinstance(policy, dict):
            return True
        if _filter_matches(policy.get("always"), tool_name, annotations):
            return True
        return not _filter_matches(policy.get("never"), tool_name, annotations)


def _is_read_only(annotations: dict[str, Any] | None) -> bool:
    return bool((annotations or {}).get("readOnlyHint"))


def _filter_matches(flt: Any, tool_name: str, annotations: dict[str, Any] | None) -> bool:
    """An ``McpToolFilter``: every condition it sets must hold; an empty filter matches nothing."""
    if not isinstance(flt, dict):
        return False
    names = flt.get("tool_names")
    read_only = flt.get("read_only")
    if names is None and read_only is None:
        return False
    if names is not None and tool_name not in names:
        return False
    return not (read_only is not None and _is_read_only(annotations) != bool(read_only))


@dataclass
class ServerTool:
    """An MCP tool as the model sees it (``model_name``) and as the server knows it (``name``)."""

    model_name: str
    name: str
    server: McpServer
    description: str | None
    input_schema: dict[str, Any]
    annotations: dict[str, Any] | None = None

    def needs_approval(self) -> bool:
        return self.server.needs_approval(self.name, self.annotations)


def _refuse_unsupported_mcp(tool: dict[str, Any], param: str) -> None:
    """Options OpenAI accepts that this server cannot honour are a 400, never silently ignored."""
    if tool.get("connector_id"):
        raise InvalidRequest("Connectors are not supported by this server; give a server_url.",
                             param=f"{param}.connector_id", code="unsupported_parameter")
    if tool.get("tunnel_id"):
        raise InvalidRequest("MCP tunnels are not supported by this server.", param=f"{param}.tunnel_id",
                             code="unsupported_parameter")
    if tool.get("defer_loading"):
        raise InvalidRequest("Deferred tool loading is not supported by this server.",
                             param=f"{param}.defer_loading", code="unsupported_parameter")
    if set(tool.get("allowed_callers") or ["direct"]) - {"direct"}:
        raise InvalidRequest("Only direct tool callers are supported by this server.",
                             param=f"{param}.allowed_callers", code="unsupported_value")
    url = tool.get("server_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidRequest("MCP tools need an http(s) server_url.", param=f"{param}.server_url",
                             code="missing_required_parameter" if not url else "invalid_value")
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        host = ""
    if not host:  # refused here rather than tried (a 424 that blamed the server)
        raise InvalidRequest(f"Invalid 'server_url': '{url}' is not a valid URL.", param=f"{param}.server_url",
                             code="invalid_value")


MAX_TOOL_NAME = 64
_ILLEGAL_IN_NAME = re.compile(r"[^a-zA-Z0-9_-]")


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
                _refuse_unsupported_mcp(tool, f"tools[{i}]")
                ts.servers[label] = McpServer.from_tool(tool)
        return ts

    def add_listing(self, server_label: str, tools: list[dict[str, Any]]) -> None:
        """Register the tools an ``mcp_list_tools`` item names, as the model will see them."""
        server = self.servers[server_label]
        for tool in tools:
            if not server.allows(tool):
                continue
            model_name = self._free_name(server_label, tool["name"])
            self.server_tools[model_name] = ServerTool(
                model_name=model_name, name=tool["name"], server=server, description=tool.get("description"),
                input_schema=tool.get("input_schema") or {"type": "object", "properties": {}},
                annotations=tool.get("annotations"),
            )

    def _free_name(self, server_label: str, name: str) -> str:
        """The name the model sees for an MCP tool: a legal function name (``[a-zA-Z0-9_-]{1,64}``,
        what OpenAI-compatible backends accept) that no other tool of the request uses. A clash is
        settled with ``label__name``; a name still too long or taken gets a stable hash suffix."""
        taken = self.functions.keys() | self.server_tools.keys()
        plain = _ILLEGAL_IN_NAME.sub("_", name) or "tool"
        if len(plain) <= MAX_TOOL_NAME and plain not in taken:
            return plain
        prefixed = _ILLEGAL_IN_NAME.sub("_", f"{server_label}__{name}")
        if len(prefixed) <= MAX_TOOL_NAME and prefixed not in taken:
            return prefixed
        digest = hashlib.sha256(f"{server_label}\0{name}".encode()).hexdigest()
        for size in (8, 16, 64):
            short = f"{prefixed[:MAX_TOOL_NAME - size - 1]}_{digest[:size]}"
            if short not in taken:
                return short
        raise InvalidRequest(f"MCP server '{server_label}' lists tool names that cannot be told apart.",
                             param="tools")

    def find_server_tool(self, server_label: str, name: str) -> ServerTool | None:
        """The offered MCP tool ``name`` of ``server_label`` (None: not in this request, or not allowed)."""
        return next((t for t in self.server_tools.values()
                     if t.server.server_label == server_label and t.name == name), None)

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


def _choice_error(message: str, param: str = "tool_choice") -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_value")


def _mcp_names(toolset: Toolset, label: Any, name: Any) -> set[str]:
    return {n for n, t in toolset.server_tools.items()
            if t.server.server_label == label and (not name or t.name == name)}


def resolve_tool_choice(choice: Any, toolset: Toolset) -> tuple[Any, set[str] | None]:
    """The upstream ``tool_choice`` (None: leave it out) and the subset of tools to offer (None: all).

    Every form the Responses API accepts for function and MCP tools maps onto chat completions:
    ``auto``/``none``/``required`` pass through, a named function or a single MCP tool becomes a
    forced function, and ``allowed_tools`` (or an MCP server with several tools) narrows the
    offered tools, with ``required`` when the mode asks for it.
    """
    if choice is None or choice == "auto":
        return None, None
    if choice in ("none", "required"):
        return choice, None
    if not isinstance(choice, dict):
        raise _choice_error(f"Invalid value: '{choice}'. Supported values are: 'none', 'auto' and 'required'.")
    kind = choice.get("type")
    if kind == "function":
        name = choice.get("name")
        if not isinstance(name, str):
            raise InvalidRequest("Missing required parameter: 'tool_choice.name'.", param="tool_choice.name",
                                 code="missing_required_parameter")
        if name not in toolset.functions:
            raise _choice_error(f"Tool choice '{name}' not found in 'tools' parameter.", "tool_choice.name")
        return {"type": "function", "function": {"name": name}}, None
    if kind == "mcp":
        label = choice.get("server_label")
        if label not in toolset.servers:
            raise _choice_error(f"Tool choice names MCP server '{label}', which is not in 'tools'.",
                                "tool_choice.server_label")
        names = _mcp_names(toolset, label, choice.get("name"))
        if not names:
            raise _choice_error(f"Tool choice names no tool of MCP server '{label}'.", "tool_choice.name")
        if len(names) == 1:
            return {"type": "function", "function": {"name": next(iter(names))}}, None
        return "required", names
    if kind == "allowed_tools":
        mode = choice.get("mode", "auto")
        if mode not in ("auto", "required"):
            raise _choice_error(f"Invalid value: '{mode}'. Supported values are: 'auto' and 'required'.",
                                "tool_choice.mode")
        tools = choice.get("tools")
        if not isinstance(tools, list):
            raise InvalidRequest("Missing required parameter: 'tool_choice.tools'.", param="tool_choice.tools",
                                 code="missing_required_parameter")
        allowed: set[str] = set()
        for j, t in enumerate(tools):
            t_kind = t.get("type") if isinstance(t, dict) else None
            if t_kind == "function":
                if t.get("name") not in toolset.functions:
                    raise _choice_error(f"Allowed tool '{t.get('name')}' not found in 'tools' parameter.",
                                        f"tool_choice.tools[{j}].name")
                allowed.add(t["name"])
            elif t_kind == "mcp":
                if t.get("server_label") not in toolset.servers:
                    raise _choice_error(f"Allowed MCP server '{t.get('server_label')}' not found in 'tools'.",
                                        f"tool_choice.tools[{j}].server_label")
                allowed |= _mcp_names(toolset, t["server_label"], t.get("name"))
            else:
                raise _choice_error(f"Allowed tool type '{t_kind}' is not supported. Supported: function, mcp.",
                                    f"tool_choice.tools[{j}].type")
        return ("required" if mode == "required" else None), allowed
    raise _choice_error(f"Unsupported tool_choice type '{kind}'. Supported: function, mcp, allowed_tools.",
                        "tool_choice.type")
