"""API errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    status = 400
    type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(APIError):
    pass


class NotFound(APIError):
    status = 404

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message, param=param, code=code)


class Unauthorized(APIError):
    status = 401

    def __init__(self, message: str):
        super().__init__(message, code="invalid_api_key")


class Overloaded(APIError):
    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str):
        super().__init__(message, code="rate_limit_exceeded")


class FailedDependency(APIError):
    """A service the request names (an MCP server) could not be used: 424, as OpenAI answers."""

    status = 424
    type = "external_connector_error"


class ServerError(APIError):
    status = 500
    type = "server_error"


class BackendError(Exception):
    """The inference backend failed; ``code`` is one of ResponseError's codes."""

    def __init__(self, message: str, code: str = "server_error", status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def not_found(kind: str, object_id: str, param: str | None = None) -> NotFound:
    return NotFound(f"{kind} with id '{object_id}' not found.", param=param)
