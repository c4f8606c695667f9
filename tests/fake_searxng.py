"""A fake SearXNG on loopback, speaking its JSON search API (``GET /search?q=...&format=json``).

It searches a small corpus the tests give it (every result whose title or content holds a word of
the query, ``site:`` honoured as SearXNG's engines do), answers 403 to a format other than json as
an instance without it enabled does, and can be told to fail. It also serves the corpus's pages
(``/pages/...``), for the tests of page fetching. Requests are recorded for the tests to read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response


@dataclass
class Page:
    url: str
    title: str
    content: str  # the snippet SearXNG returns
    body: str = ""  # the HTML served at /pages/<path> when the url points at this server


@dataclass
class FakeSearxng:
    pages: list[Page] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    fail_status: int | None = None  # answer every search with this status
    garbage: bool = False  # answer with something that is not SearXNG's JSON
    url: str = ""

    def reset(self) -> None:
        self.pages = []
        self.requests = []
        self.fail_status = None
        self.garbage = False

    def search(self, q: str) -> list[dict[str, Any]]:
        sites = re.findall(r"site:(\S+)", q)
        words = [w for w in re.findall(r"\w+", re.sub(r"site:\S+", "", q).lower()) if len(w) > 2]
        out = []
        for i, page in enumerate(self.pages):
            host = re.sub(r"^https?://([^/:]+).*$", r"\1", page.url)
            if sites and not any(host == s or host.endswith("." + s) for s in sites):
                continue
            text = f"{page.title} {page.content}".lower()
            hits = sum(1 for w in words if w in text)
            if hits:
                out.append((hits, i, page))
        out.sort(key=lambda t: (-t[0], t[1]))
        return [{"url": p.url, "title": p.title, "content": p.content, "engine": "fake", "engines": ["fake"],
                 "parsed_url": re.split(r"://|/", p.url, maxsplit=2), "score": float(h), "category": "general",
                 "positions": [rank + 1], "publishedDate": None, "template": "default.html"}
                for rank, (h, _, p) in enumerate(out)]

    def build_app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/search")
        async def search(request: Request) -> Response:
            params = dict(request.query_params)
            self.requests.append(params)
            if params.get("format") != "json":
                return PlainTextResponse("Forbidden", status_code=403)
            if self.fail_status is not None:
                return PlainTextResponse("engine failure", status_code=self.fail_status)
            if self.garbage:
                return HTMLResponse("<html><body>not json</body></html>")
            q = params.get("q", "")
            results = self.search(q)
            return JSONResponse({"query": q, "number_of_results": len(results), "results": results,
                                 "answers": [], "corrections": [], "infoboxes": [], "suggestions": [],
                                 "unresponsive_engines": []})

        @app.get("/pages/{path:path}")
        async def page(path: str) -> Response:
            for p in self.pages:
                if p.url.endswith("/pages/" + path) and p.body:
                    return HTMLResponse(p.body)
            return PlainTextResponse("not found", status_code=404)

        return app
