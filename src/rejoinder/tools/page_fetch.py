"""Reading a web page for ``web_search``, without becoming a way into the server's own network.

Every hop (the URL and each redirect) is resolved first; if any address it resolves to is not a
public one (loopback, private, link-local, carrier-grade NAT, multicast, reserved...), the fetch
is refused unless ``allow_private`` (the operator's setting). The connection then goes to the
address that was checked (TLS still verifies the host name), so a DNS answer that changes
between the check and the connect cannot redirect it. Bodies are read up to ``max_bytes``; only
HTML and plain text are read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

import httpx

from rejoinder.vectors.extract import ExtractionError, extract_text

MAX_REDIRECTS = 3


class FetchRefused(Exception):
    """The page was not fetched; ``str()`` says why, safe to show."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise FetchRefused(f"The host '{host}' could not be resolved.") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def checked_address(url: str, allow_private: bool) -> str:
    """The address to connect to for ``url``; refused if any address of its host is not public."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRefused("Only http and https pages are fetched.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await _resolve(parts.hostname, port)
    if not addresses:
        raise FetchRefused(f"The host '{parts.hostname}' has no address.")
    if not allow_private and not all(is_public(a) for a in addresses):
        raise FetchRefused(f"The host '{parts.hostname}' is a loopback or private address; it is not fetched.")
    return addresses[0]


def _pinned(url: str, address: str) -> tuple[str, str]:
    """``url`` with its host replaced by ``address``, and the Host header it needs."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    header = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=netloc).geturl(), header


async def fetch_text(client: httpx.AsyncClient, url: str, *, allow_private: bool, max_bytes: int) -> str:
    """The readable text of the page at ``url``."""
    for _ in range(MAX_REDIRECTS + 1):
        address = await checked_address(url, allow_private)
        target, host_header = _pinned(url, address)
        hostname = urlsplit(url).hostname or ""
        request = client.build_request("GET", target, headers={"Host": host_header},
                                       extensions={"sni_hostname": hostname})
        try:
            reply = await client.send(request, stream=True)
        except httpx.HTTPError:
            raise FetchRefused("The page could not be fetched.") from None
        try:
            if reply.is_redirect and reply.headers.get("location"):
                url = urljoin(url, reply.headers["location"])
                continue
            if reply.status_code != 200:
                raise FetchRefused(f"The page answered HTTP {reply.status_code}.")
            kind = reply.headers.get("content-type", "text/html").split(";")[0].strip().lower()
            if kind not in ("text/html", "application/xhtml+xml", "text/plain"):
                raise FetchRefused(f"The page is {kind}, not text.")
            body = bytearray()
            async for piece in reply.aiter_bytes():
                body += piece
                if len(body) >= max_bytes:
                    del body[max_bytes:]
                    break
        except httpx.HTTPError:
            raise FetchRefused("The page could not be read.") from None
        finally:
            await reply.aclose()
        name = "page.txt" if kind == "text/plain" else "page.html"
        try:
            return extract_text(name, bytes(body).decode("utf-8", "replace").encode())
        except ExtractionError as exc:
            raise FetchRefused(f"The page could not be read: {exc}") from None
    raise FetchRefused("The page redirected too many times.")
