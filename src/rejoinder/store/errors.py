"""What the store refuses, as the store's own exceptions; ``http/errors.py`` maps each to OpenAI's
error shape. The store knows nothing of HTTP: it says what is missing, duplicated or not allowed,
and the HTTP layer decides the status code.

``code`` and ``param`` are the facts an API error reports (``duplicate_item``, ``after``); the
message is the one the client reads.
"""

from __future__ import annotations


class StoreError(Exception):
    """A store operation refused; nothing it began was kept (its transaction rolled back)."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class Missing(StoreError):
    """The object does not exist, or belongs to another tenant (the two look the same)."""

    def __init__(self, kind: str, object_id: str, *, param: str | None = None):
        super().__init__(f"{kind} with id '{object_id}' not found.", param=param)
        self.kind = kind
        self.object_id = object_id


class DuplicateItem(StoreError):
    """An item id already in the conversation."""

    def __init__(self) -> None:
        super().__init__("An item with the same id already exists in this conversation.", param="items",
                         code="duplicate_item")


class UnknownCursor(StoreError):
    """A page's ``after`` names no object of the list."""

    def __init__(self, message: str, *, param: str = "after"):
        super().__init__(message, param=param, code="invalid_value")


class NotCancellable(StoreError):
    """A response that cannot be cancelled: a synchronous one, or one that already ended."""

    def __init__(self, message: str):
        super().__init__(message)
