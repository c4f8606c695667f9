"""Whose objects a store call may see: one tenant, or, for recovery code only, every tenant.

A request acts for one API principal, its ``Tenant``; every store method a request reaches takes
one and reads or changes only that principal's rows (another principal's id answers exactly like a
missing one). There is no "no tenant": ``None`` is refused at run time as well as by the type
checker, so a forgotten argument cannot switch isolation off.

The only way to read across tenants is ``ACROSS_TENANTS``, for code that serves no request: lease
recovery, a background worker picking up a queued job, a follower's terminal event. Every use of it
is a ``grep ACROSS_TENANTS`` away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Tenant:
    """The API principal a request acts for (``anonymous`` when API keys are off)."""

    principal: str

    def __post_init__(self) -> None:
        if not isinstance(self.principal, str) or not self.principal:
            raise TypeError(f"a Tenant needs a principal name, not {self.principal!r}")


class AcrossTenants:
    """Internal: read a row whatever tenant owns it. Never built from a request."""

    _instance: AcrossTenants | None = None

    def __new__(cls) -> AcrossTenants:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ACROSS_TENANTS"


ACROSS_TENANTS: Final = AcrossTenants()

# What a store read accepts: one tenant, or every tenant for recovery and worker code.
Scope = Tenant | AcrossTenants


def check_scope(scope: object) -> Tenant | None:
    """The tenant to filter on, None for ``ACROSS_TENANTS``; anything else (``None``, a bare
    string) is a programming error and raises rather than reading every tenant's rows."""
    if isinstance(scope, Tenant):
        return scope
    if scope is ACROSS_TENANTS:
        return None
    raise TypeError(f"a store call needs a Tenant or ACROSS_TENANTS, not {scope!r}")


def check_tenant(tenant: object) -> Tenant:
    """A write on behalf of a request: one tenant, never ``ACROSS_TENANTS``."""
    if not isinstance(tenant, Tenant):
        raise TypeError(f"a store write needs a Tenant, not {tenant!r}")
    return tenant
