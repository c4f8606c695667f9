"""Object ids in OpenAI's style: a type prefix and 48 hex characters."""

import secrets

PREFIX_BY_ITEM_TYPE = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "mcp_list_tools": "mcpl",
    "mcp_call": "mcp",
    "mcp_approval_request": "mcpr",
    "mcp_approval_response": "mcpa",
    "reasoning": "rs",
    "web_search_call": "ws",
    "file_search_call": "fs",
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def new_item_id(item_type: str) -> str:
    return new_id(PREFIX_BY_ITEM_TYPE.get(item_type, "item"))
