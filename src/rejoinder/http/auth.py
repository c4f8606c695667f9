"""Optional API keys. Off by default; when on, every request names a principal that owns what it makes."""

from __future__ import annotations

from fastapi import Request

from rejoinder.errors import Unauthorized

ANONYMOUS = "anonymous"


async def principal(request: Request) -> str:
    """Async on purpose: FastAPI runs a sync dependency in a worker thread, a hop on every request."""
    keys: dict[str, str] = request.app.state.settings.api_keys
    if not keys:
        return ANONYMOUS
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("You didn't provide an API key. Provide it in the Authorization header "
                           "(Authorization: Bearer YOUR_KEY).")
    owner = keys.get(token)
    if owner is None:
        shown = f"{token[:3]}...{token[-4:]}" if len(token) > 8 else "***"
        raise Unauthorized(f"Incorrect API key provided: {shown}.")
    return owner
