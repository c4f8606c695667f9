"""``GET /metrics``: Prometheus' text format.

Who may read it when API keys are configured is ``metrics_access``: ``loopback`` (the default) lets
a scraper on the same host in without a key and asks others for one; ``key`` asks everyone;
``open`` asks no one; ``off`` answers 404. Without API keys the whole API is open, and so is this.
Behind a reverse proxy on the same host every client looks local: use ``key`` there. The metrics
hold no ids and no tenant's data (counts per model, route and status), so any key may read them.
"""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Request
from fastapi.responses import Response

from rejoinder.errors import NotFound
from rejoinder.http.auth import principal_of
from rejoinder.observability.middleware import note
from rejoinder.store.stats import queued_count

router = APIRouter()


def is_loopback(host: str | None) -> bool:
    """A loopback TCP peer; no peer address at all is a Unix socket, reachable only from this host."""
    if host is None:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _check_access(request: Request) -> None:
    settings = request.app.state.settings
    access = settings.metrics_access
    if access == "off":
        raise NotFound("Not found.")
    if not settings.api_keys or access == "open":
        return
    if access == "loopback" and is_loopback(request.client.host if request.client else None):
        return
    note(request.scope, principal=principal_of(settings.api_keys, request.headers.get("authorization")).principal)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    _check_access(request)
    telemetry = request.app.state.telemetry
    services = getattr(request.app.state, "services", None)
    if services is not None:
        telemetry.metrics.queue_depth.set(await queued_count(services.db))
    body, content_type = telemetry.metrics.exposition(request.headers.get("accept", ""))
    return Response(body, media_type=content_type)
