"""MCP tools, the first server-executed tool kind: ``McpKind`` (kind.py) with its items and events
(calls.py), the servers' options (servers.py) and the MCP client (client.py)."""

from rejoinder.tools.mcp.kind import McpKind

__all__ = ["McpKind"]
