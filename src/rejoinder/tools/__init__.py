"""Tools: client-side function tools and server-side MCP tools."""
