"""Every error leaves the server in OpenAI's shape; unexpected ones never show a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rejoinder.api.errors import from_validation_error
from rejoinder.errors import APIError, InvalidRequest, NotFound
from rejoinder.store.errors import Missing, StoreError

log = logging.getLogger(__name__)


def error_response(exc: APIError | StoreError) -> JSONResponse:
    api = from_store_error(exc) if isinstance(exc, StoreError) else exc
    return JSONResponse(api.body(), status_code=api.status)


def from_store_error(exc: StoreError) -> APIError:
    """A store refusal as OpenAI's error: a missing object (or another tenant's) is a 404, every
    other refusal (a duplicate item, an unknown cursor, a response that cannot be cancelled) a 400."""
    if isinstance(exc, Missing):
        return NotFound(exc.message, param=exc.param, code=exc.code)
    return InvalidRequest(exc.message, param=exc.param, code=exc.code)


def unexpected_error_response() -> JSONResponse:
    """A 500 that says nothing of the exception (it is logged by the caller)."""
    body = {"error": {"message": "The server had an error while processing your request.",
                      "type": "server_error", "param": None, "code": "server_error"}}
    return JSONResponse(body, status_code=500)


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StoreError)
    async def _store_error(_request: Request, exc: StoreError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {}
        loc = tuple(p for p in err.get("loc", ()) if p not in ("query", "path", "body"))
        from pydantic import ValidationError

        try:
            raise ValidationError.from_exception_data("request", [  # type: ignore[list-item]
                {"type": err.get("type", "value_error"), "loc": loc, "input": err.get("input"),
                 "ctx": err.get("ctx") or {}} if err.get("ctx") else
                {"type": err.get("type", "value_error"), "loc": loc, "input": err.get("input")}
            ])
        except ValidationError as converted:
            api = from_validation_error(converted)
        except Exception:
            api = InvalidRequest(f"Invalid request: {err.get('msg', 'bad input')}.", param=".".join(map(str, loc)))
        return error_response(api)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code in (404, 405):  # no route for this path, or not for this method: OpenAI's 404
            api = APIError(f"Invalid URL ({request.method} {request.url.path})", status=404)
        else:
            api = APIError(str(exc.detail), status=exc.status_code)
        return error_response(api)

    app.add_middleware(UnexpectedErrors)


class UnexpectedErrors:
    """A route's unexpected error: logged once, answered with OpenAI's 500, the connection kept.

    Starlette's own handler for ``Exception`` re-raises after answering, so uvicorn logged the
    traceback a second time and closed the connection under the client's keep-alive pool. An error
    after the answer began can only end the connection, which uvicorn does.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            if started:
                raise
            log.exception("unhandled error")
            await unexpected_error_response()(scope, receive, send)
