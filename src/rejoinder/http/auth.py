"""Optional API keys. Off by default; when on, every request names a principal that owns what it makes."""

from __future__ import annotations

from rejoinder.errors import Unauthorized
from rejoinder.tenant import Tenant

ANONYMOUS = Tenant("anonymous")


def principal_of(keys: dict[str, str], authorization: str | None) -> Tenant:
    """The tenant an ``Authorization`` header names; a 401 when keys are on and it names none."""
    if not keys:
        return ANONYMOUS
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("You didn't provide an API key. Provide it in the Authorization header "
                           "(Authorization: Bearer YOUR_KEY).")
    owner = keys.get(token)
    if owner is None:
        shown = f"{token[:3]}...{token[-4:]}" if len(token) > 8 else "***"
        raise Unauthorized(f"Incorrect API key provided: {shown}.")
    return Tenant(owner)
