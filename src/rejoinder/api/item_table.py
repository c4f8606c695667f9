"""The core rows of the one table of item types (``item_types.ItemType``).

Every input item type the SDK defines, with the SDK param type it is checked against, the fields
pairing needs and the defaults the API fills in. The engine's own items (messages, reasoning,
references, compaction) carry their id prefix here; a tool kind's rows (tools/) give the prefix and
replay of the items its calls make, and are merged over these. The server's ``ToolKinds``
(tools/registry.py) holds the merged table, which validation (api/items.py, api/conversations.py),
normalising, ids (ids.py) and the context builder (engine/context.py) all read.
"""

from __future__ import annotations

from openai.types import responses as R
from openai.types.responses import response_input_item_param as P

from rejoinder.engine.context import replay_message
from rejoinder.item_types import ItemType

_DONE = {"status": "completed"}
_CLIENT_SEARCH = {"status": "completed", "execution": "client"}

CORE_ITEM_TYPES = (
    ItemType("message", "msg", replay_message, defaults=_DONE),
    ItemType("reasoning", "rs", param=R.ResponseReasoningItemParam),
    ItemType("item_reference", "item", param=P.ItemReference, required=("id",), in_conversations=False),
    ItemType("compaction", "cmp", param=R.ResponseCompactionItemParamParam),  # engine/compaction.py
    # Items of tool kinds (their prefix and replay: tools/).
    ItemType("function_call", param=R.ResponseFunctionToolCallParam, required=("call_id", "name", "arguments"),
             defaults=_DONE),
    ItemType("function_call_output", param=P.FunctionCallOutput, required=("call_id",), defaults=_DONE),
    ItemType("mcp_list_tools", param=P.McpListTools),
    ItemType("mcp_call", param=P.McpCall),
    ItemType("mcp_approval_request", param=P.McpApprovalRequest),
    ItemType("mcp_approval_response", param=P.McpApprovalResponse, required=("approval_request_id", "approve")),
    ItemType("web_search_call", param=R.ResponseFunctionWebSearchParam),
    ItemType("file_search_call", param=R.ResponseFileSearchToolCallParam),
    ItemType("custom_tool_call", param=R.ResponseCustomToolCallParam),
    ItemType("custom_tool_call_output", param=R.ResponseCustomToolCallOutputParam, required=("call_id",)),
    ItemType("shell_call", param=P.ShellCall, defaults=_DONE),
    ItemType("shell_call_output", param=P.ShellCallOutput, defaults=_DONE),
    ItemType("local_shell_call", param=P.LocalShellCall, defaults=_DONE),
    ItemType("local_shell_call_output", param=P.LocalShellCallOutput),
    ItemType("apply_patch_call", param=P.ApplyPatchCall),
    ItemType("apply_patch_call_output", param=P.ApplyPatchCallOutput),
    ItemType("tool_search_call", param=P.ToolSearchCall, defaults=_CLIENT_SEARCH),
    ItemType("tool_search_output", param=R.ResponseToolSearchOutputItemParamParam, required=("call_id",),
             defaults=_CLIENT_SEARCH),
    ItemType("additional_tools", param=P.AdditionalTools),
    # Tools this server does not run: stored in conversations as given, refused as a response's input.
    ItemType("computer_call", "cu", param=R.ResponseComputerToolCallParam, input="not_available"),
    ItemType("computer_call_output", "cuo", param=P.ComputerCallOutput, input="not_available"),
    ItemType("image_generation_call", "ig", param=P.ImageGenerationCall, input="not_available"),
    ItemType("code_interpreter_call", "ci", param=R.ResponseCodeInterpreterToolCallParam, input="not_available"),
    ItemType("program", "prog", param=P.Program, input="not_available"),
    ItemType("program_output", "progo", param=P.ProgramOutput, input="not_available"),
    ItemType("configuration_update", "cfg", param=R.ResponseConfigurationUpdateItemParamParam,
             input="not_available"),
)
