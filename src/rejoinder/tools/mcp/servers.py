"""The MCP servers a request declares: their options, the tools they allow and the approval policy.

Options OpenAI accepts that this server cannot honour (connectors, tunnels, deferred loading) are a
400, never silently ignored.
"""

from __future__ import annotations

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


def refuse_unsupported(tool: dict[str, Any], param: str) -> None:
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
