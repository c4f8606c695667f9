"""Object ids in OpenAI's style: a type prefix and 48 hex characters.

Like OpenAI's, an id starts with its creation time (8 hex digits of seconds, then 6 of the
fraction), so ids of one kind sort roughly by age. That also keeps the store's B-trees appending
at their right edge: with random ids each commit rewrote pages scattered across every index on an
id (10.7 -> 10.0 WAL frames and 139 -> 107 µs a commit in a microbench of a turn's write). The
other 34 digits are random (136 bits), so an id stays unguessable.
"""

import secrets
import time

# An item type's id prefix, from the item table (``ItemType.id_prefix``): filled in when the server's
# ``ToolKinds`` is built (tools/registry.py).
PREFIX_BY_ITEM_TYPE: dict[str, str] = {}


def new_id(prefix: str, sep: str = "_") -> str:
    """``sep``: OpenAI spells file ids ``file-...``, every other id with an underscore."""
    now = time.time()
    return f"{prefix}{sep}{int(now):08x}{int(now % 1 * 0x1000000):06x}{secrets.token_hex(17)}"


def new_item_id(item_type: str) -> str:
    prefix = PREFIX_BY_ITEM_TYPE.get(item_type)
    if prefix is None:
        import rejoinder.tools.registry  # noqa: F401  (builds the table, which fills PREFIX_BY_ITEM_TYPE)

        prefix = PREFIX_BY_ITEM_TYPE.get(item_type, "item")
    return new_id(prefix)
