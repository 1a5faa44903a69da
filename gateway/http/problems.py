"""Errors become RFC 9457 ``application/problem+json`` responses here, and only here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError, HttpError, OAuthError, Unauthorized

__all__ = ["PROBLEM", "STARLETTE_CODES", "install", "problem", "problem_body"]

log = logging.getLogger("dsgo.http")
PROBLEM = "application/problem+json"
#: the codes of errors raised outside the error tree (routing, validation, the unexpected)
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}
STARLETTE_CODES = (*_HTTP_CODES.values(), "http_error", "bad_request", "internal_error")
_HIDDEN = "the node could not answer; see its log"


def _body(status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    body = {
        "type": f"urn:dsgo:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update(extra)
    return body


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = _body(status, code, title, detail, **extra)
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM, headers=headers)


def problem_body(exc: BaseException, where: str) -> tuple[dict[str, Any], dict[str, str] | None]:
    """The problem+json body and headers for ``exc``, raised while answering ``where``.

    A ``GatewayError`` gives its code and detail (a 5xx not meant for callers is logged and
    says nothing of itself); anything else is a 500 whose cause is logged, never echoed.
    Responses and the error lines of a stream that has already begun both come from here."""
    if not isinstance(exc, GatewayError):
        log.error("unexpected error on %s", where, exc_info=exc)
        return _body(500, "internal_error", "Internal error", _HIDDEN), None
    headers = exc.headers if isinstance(exc, HttpError) else None
    if exc.status >= 500:
        log.error("%s: %s", where, exc.detail)
        if not isinstance(exc, HttpError):  # not meant for callers: say nothing of it
            return _body(exc.status, exc.code, exc.title, _HIDDEN), None
    extra: dict[str, str] = {}
    if isinstance(exc, HttpError) and exc.reason:  # which check refused: a stable code
        extra["reason"] = exc.reason
    if isinstance(exc, OAuthError):  # RFC 6749 §5.2 members, for OAuth clients
        extra |= {"error": exc.code, "error_description": exc.detail}
    return _body(exc.status, exc.code, exc.title, exc.detail, **extra), headers


def _response(exc: BaseException, request: Request) -> Response:
    body, headers = problem_body(exc, f"{request.method} {request.url.path}")
    return Response(orjson.dumps(body), status_code=body["status"], media_type=PROBLEM, headers=headers)


def install(app: FastAPI, browser: Callable[[Request], Response | None] | None = None) -> None:
    """Register the handlers that turn every error into problem+json. ``browser`` may
    answer a browser's unauthenticated request instead (the node's workbench login)."""

    async def gateway_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        if isinstance(exc, Unauthorized) and browser is not None:
            answer = browser(request)
            if answer is not None:
                return answer
        return _response(exc, request)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail), dict(exc.headers or {}))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return problem(400, "bad_request", "Bad request", f"{where}: {first.get('msg', 'invalid')}")

    async def unexpected(request: Request, exc: Exception) -> Response:
        return _response(exc, request)

    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
