"""The thinnest Python proxy possible, as a floor for ``bench_core``'s figures.

A raw ASGI app under uvicorn (the same server, loop and HTTP parser as Rejoinder) that forwards
the request body to the upstream over one pooled aiohttp session and passes the answer's bytes
back as they arrive: no validation, no storage, no events. What it adds over calling the upstream
directly is what any Python proxy pays on this machine (two more loopback hops, one more process
to wake); Rejoinder's own cost is what it adds beyond that.

    python -m bench.passthrough UPSTREAM_URL PORT
"""

from __future__ import annotations

import sys
from typing import Any

import aiohttp
import uvicorn


def make_app(upstream: str) -> Any:
    session: aiohttp.ClientSession | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] != "http":
            return
        if scope["path"] == "/health":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if session is None:
            session = aiohttp.ClientSession()
        async with session.post(upstream + scope["path"], data=body,
                                headers={"content-type": "application/json"}) as r:
            await send({"type": "http.response.start", "status": r.status,
                        "headers": [(b"content-type", r.headers.get("content-type", "").encode())]})
            async for block in r.content.iter_any():
                await send({"type": "http.response.body", "body": block, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


if __name__ == "__main__":
    uvicorn.run(make_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
