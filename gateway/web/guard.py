"""Who is at the workbench, and whether a form really comes from it.

People and machines never mix: a page takes a session cookie and nothing else (a bearer
token opens no page, a cookie authorises no API route), a request another site caused
(``Sec-Fetch-Site: cross-site``) has no session, and every POST must come from this
origin and carry the form's CSRF token (OWASP CSRF Prevention Cheat Sheet: synchronizer
token, plus the Origin check). Before login the token is a signed random value in a
cookie of its own, compared with the form's (double submit).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import CsrfRefused
from gateway.web.accounts import Account
from gateway.web.sessions import Session

__all__ = [
    "COOKIE",
    "LOGIN_COOKIE",
    "SECURITY_HEADERS",
    "Person",
    "check_form",
    "login_token",
    "set_cookie",
]

COOKIE = "dsgo_session"
LOGIN_COOKIE = "dsgo_login"
#: on every workbench response: nothing from elsewhere, no framing, no sniffing, no caching
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


@dataclass(frozen=True, slots=True)
class Person:
    """One of the node's own people, logged in."""

    account: Account
    session: Session

    @property
    def username(self) -> str:
        return self.account.username


def cross_site(request: Request) -> bool:
    """A request another site's page caused (Fetch Metadata, W3C): it gets no session."""
    return request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def check_form(request: Request, form: FormData, expected: str | None) -> None:
    """Refuse a POST from another origin, or whose CSRF token is not ``expected``."""
    origin = request.headers.get("origin")
    if cross_site(request) or (origin is not None and origin != _own_origin(request)):
        raise CsrfRefused("this form was sent from another site; use the workbench's own pages")
    sent = form.get("csrf")
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise CsrfRefused("the form's security token is missing or stale; reload the page and try again")


def login_token(request: Request) -> tuple[str, bool]:
    """The pre-login CSRF token (from its cookie, or a new one) and whether it is new."""
    current = request.cookies.get(LOGIN_COOKIE)
    if current and len(current) == 43:
        return current, False
    return secrets.token_urlsafe(32), True


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    """HttpOnly, SameSite=Strict, path /; Secure when the request came over https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
