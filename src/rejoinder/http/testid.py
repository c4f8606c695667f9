"""Carries a test's id (``X-Rejoinder-Test-Id``) to the recorder, when recording is on."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from rejoinder.backends.recorder import current_test_id

HEADER = b"x-rejoinder-test-id"


class TestIdMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == HEADER:
                    token = current_test_id.set(value.decode())
                    try:
                        await self.app(scope, receive, send)
                    finally:
                        current_test_id.reset(token)
                    return
        await self.app(scope, receive, send)
