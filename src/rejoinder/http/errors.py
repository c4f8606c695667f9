"""Every error leaves the server in OpenAI's shape; unexpected ones never show a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rejoinder.api.errors import from_validation_error
from rejoinder.errors import APIError, InvalidRequest

log = logging.getLogger(__name__)


def error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def unexpected_error_response() -> JSONResponse:
    """A 500 that says nothing of the exception (it is logged by the caller)."""
    body = {"error": {"message": "The server had an error while processing your request.",
                      "type": "server_error", "param": None, "code": "server_error"}}
    return JSONResponse(body, status_code=500)


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError) -> JSONResponse:
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
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            api = APIError("Not found.", status=404)
        elif exc.status_code == 405:
            api = APIError("Method not allowed.", status=405)
        else:
            api = APIError(str(exc.detail), status=exc.status_code)
        return error_response(api)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return unexpected_error_response()
