"""Errors as the API answers them, and the token that guards writes.

Every error is ``{"error": {"code", "message"}}``, FastAPI's own shapes included (its validation
errors are 400 here, not 422). The planner's errors map to HTTP as the command line maps them to
exit codes:

    ProcessNotFound, RunNotFound   404 not_found
    Conflict                       409 conflict
    InvalidRequest, DefinitionError, other ValueError kinds of PlannerError   400 bad_request
    anything else                  500 internal (logged with its traceback, never shown)

Writes need ``Authorization: Bearer <token>``, the token being ``PLANNER_API_TOKEN``; it is
compared with ``hmac.compare_digest`` (constant time). No token configured: writes are refused
with 403; a missing or wrong one is 401.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry.errors import Conflict, PlannerError, ProcessNotFound, RunNotFound

__all__ = ["ApiError", "check_token", "error_responses", "install_handlers"]

log = logging.getLogger(__name__)

TOKEN_ENV = "PLANNER_API_TOKEN"

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
}


class ApiError(Exception):
    """An answer other than 2xx, with its HTTP status, code and message."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, headers: Any = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.headers = headers


def error_json(status: int, code: str, message: str, headers: Any = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _planner_error(exc: PlannerError) -> tuple[int, str]:
    if isinstance(exc, ProcessNotFound | RunNotFound):
        return 404, "not_found"
    if isinstance(exc, Conflict):
        return 409, "conflict"
    if isinstance(exc, ValueError):  # InvalidRequest, DefinitionError
        return 400, "bad_request"
    return 409, "conflict"  # the database's state stands in the way (a lost lease, …)


#: what a text that does not match its field's pattern should have been, by field name
_FORMS = {
    "since": "a duration (90, 90s, 15m, 6h, 1d) or an ISO-8601 date or time that exists",
    "at": "an ISO-8601 date or time that exists (years 1900-2099)",
}


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "body"
        form = _FORMS.get(loc[-1]) if loc else None
        if error.get("type") == "string_pattern_mismatch" and form is not None:
            parts.append(f"{where}: {error.get('input')!r} is not {form}")
        else:
            parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_handlers(app: FastAPI) -> None:
    """Answer every error in the one JSON shape."""

    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_json(exc.status, exc.code, exc.message, exc.headers)

    async def planner_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PlannerError)
        status, code = _planner_error(exc)
        return error_json(status, code, str(exc))

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_json(400, "bad_request", _validation_message(exc))

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _CODES.get(exc.status_code, "error")
        return error_json(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    async def internal(_request: Request, exc: Exception) -> JSONResponse:
        log.error("HTTP API: internal error", exc_info=exc)
        return error_json(500, "internal", f"internal error: {type(exc).__name__}")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(PlannerError, planner_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal)


def check_token(configured: str | None, authorization: str | None) -> None:
    """Let a write through, or raise 403 (no token configured) / 401 (missing or wrong)."""
    if not configured:
        raise ApiError(
            403, f"writes are disabled: start the planner with {TOKEN_ENV} set to enable them"
        )
    scheme, _, given = (authorization or "").partition(" ")
    challenge = {"WWW-Authenticate": "Bearer"}
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "a write needs 'Authorization: Bearer <token>'", headers=challenge)
    # the header arrives decoded as latin-1: its bytes, against the token's UTF-8 bytes
    if not hmac.compare_digest(given.strip().encode("latin-1"), configured.encode()):
        raise ApiError(401, "wrong token", headers=challenge)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route for the OpenAPI document: each status with ``ErrorDoc``."""
    from planner.interfaces.api.models import ErrorDoc

    return {status: {"model": ErrorDoc, "description": _CODES[status]} for status in statuses}
