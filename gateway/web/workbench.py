"""The workbench: a node's own people browse, query and govern the federation from it.

``Workbench`` holds what the pages share (accounts, sessions, templates); ``routes``
gives the node's ``/login``, ``/logout`` and ``/workbench/...`` routes. Every page needs
a session of one of the node's own accounts (a browser without one is sent to the login
page) and reads as the node's own party: this node's data through ``Access``, other
parties' through ``Federation`` with this node's token, each owner applying its policy.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.config import NodeSettings
from gateway.errors import ConfigError, Forbidden, HttpError, TooManyAttempts
from gateway.federation.walk import Budget, Federation
from gateway.node import Node
from gateway.policy.model import Caller, Grant
from gateway.web.accounts import Accounts, load_accounts
from gateway.web.guard import (
    COOKIE,
    LOGIN_COOKIE,
    SECURITY_HEADERS,
    Person,
    check_form,
    cross_site,
    login_token,
    set_cookie,
)
from gateway.web.sessions import Sessions, credential_of

__all__ = ["Workbench", "browser_redirect", "routes"]

log = logging.getLogger("dsgo.workbench")
Page = Callable[["Workbench", Request, Person], Awaitable[Response]]


@cache
def _environment() -> jinja2.Environment:
    loader = jinja2.ChoiceLoader(
        [
            jinja2.PackageLoader("gateway.web", "templates"),
            jinja2.PackageLoader("gateway.formats", "templates"),
        ]
    )
    return jinja2.Environment(
        loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined
    )


@cache
def _stylesheet() -> bytes:
    return (resources.files("gateway.web") / "static" / "workbench.css").read_bytes()


@dataclass
class Workbench:
    settings: NodeSettings
    node: Node
    federation: Federation | None
    sessions: Sessions
    accounts_file: Path
    budget: Budget
    #: (seconds, results) a SPARQL query may take and return
    sparql_limits: tuple[float, int]
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._accounts = load_accounts(self.accounts_file)  # a weak hash stops the node here
        self.env = _environment()

    def accounts(self) -> Accounts:
        """The account file as it is now; a file that became wrong admits nobody (fail closed)."""
        current = self._accounts
        try:
            stamp = self.accounts_file.stat()
            changed = (stamp.st_size, stamp.st_mtime_ns) != current.stamp
        except FileNotFoundError:
            changed = current.stamp != (0, 0)
        if changed:
            try:
                self._accounts = load_accounts(self.accounts_file)
            except ConfigError as exc:
                log.error("no logins until the account file is fixed: %s", exc.detail)
                self._accounts = Accounts(self.accounts_file, {}, current.stamp)
        return self._accounts

    @property
    def party(self) -> str:
        return self.settings.party_id

    def grant(self) -> Grant:
        """What the node's own party may see of its data: a person reads as their party."""
        return self.node.access.grant(Caller(self.settings.party_id))

    def person(self, request: Request) -> Person | None:
        if cross_site(request):
            return None
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            return None
        account = self.accounts().by_name.get(session.username)
        if account is None or not hmac.compare_digest(session.credential, credential_of(account.hash)):
            return None  # removed, or its password reset since
        return Person(account, session)

    def render(
        self, template: str, request: Request, person: Person | None, status: int = 200, **ctx: Any
    ) -> Response:
        body = self.env.get_template(template).render(
            person=person, party_name=self.settings.name, party_id=self.party, path=request.url.path, **ctx
        )
        return Response(body, status_code=status, media_type="text/html", headers=SECURITY_HEADERS)


def _login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?next=" + quote(target, safe="/")


def _page(wb: Workbench, handler: Page, operator: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """A page for people with a session (operators only, if ``operator``); errors as pages."""

    async def endpoint(request: Request) -> Response:
        person = wb.person(request)
        if person is None:
            return RedirectResponse(_login_url(request), status_code=303, headers=SECURITY_HEADERS)
        try:
            if operator and not person.account.operator:
                raise Forbidden("this page is for the node's operators")
            return await handler(wb, request, person)
        except HttpError as exc:
            return wb.render("error.html", request, person, exc.status, error=exc)

    return endpoint


def _safe_next(value: str | None) -> str:
    """Only a path of this workbench: never another host (no open redirect)."""
    if value and value.startswith("/workbench/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/workbench/"


async def _login_form(wb: Workbench, request: Request) -> Response:
    if wb.person(request) is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    token, new = login_token(request)
    response = wb.render(
        "login.html", request, None, csrf=token, next=_safe_next(request.query_params.get("next"))
    )
    if new:
        set_cookie(response, request, LOGIN_COOKIE, token, 3600)
    return response


async def _login(wb: Workbench, request: Request) -> Response:
    form = await request.form()
    token, _ = login_token(request)
    try:
        check_form(request, form, request.cookies.get(LOGIN_COOKIE))
        username = str(form.get("username", "")).strip().lower()
        keys = [f"user:{username}", f"client:{request.client.host if request.client else '-'}"]
        wait = wb.sessions.wait(keys)
        if wait > 0:
            raise TooManyAttempts(
                f"too many failed logins; try again in {int(wait) + 1} s", {"retry-after": str(int(wait) + 1)}
            )
        account = wb.accounts().verify(username, str(form.get("password", "")))
        if account is None:
            wb.sessions.failed(keys)
            return wb.render(
                "login.html",
                request,
                None,
                401,
                csrf=token,
                next=_safe_next(str(form.get("next", ""))),
                failed=True,
            )
    except HttpError as exc:
        response = wb.render(
            "login.html", request, None, exc.status, csrf=token, next="/workbench/", error=exc
        )
        response.headers.update(exc.headers)
        return response
    wb.sessions.succeeded(keys)
    cookie, _ = wb.sessions.create(account.username, credential_of(account.hash))
    response = RedirectResponse(
        _safe_next(str(form.get("next", ""))), status_code=303, headers=SECURITY_HEADERS
    )
    set_cookie(response, request, COOKIE, cookie, int(wb.sessions.lifetime))
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


async def _logout(wb: Workbench, request: Request, person: Person) -> Response:
    check_form(request, await request.form(), person.session.csrf)
    wb.sessions.end(person.session)
    response = RedirectResponse("/login", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(COOKIE, path="/")
    return response


async def _stylesheet_route(request: Request) -> Response:
    return Response(_stylesheet(), media_type="text/css", headers={"cache-control": "public, max-age=3600"})


def browser_redirect(request: Request) -> Response | None:
    """For a browser without a token on a data route of a node with a workbench: its
    workbench page (or the login page), not a 401 in JSON. Machines get the 401."""
    accept = request.headers.get("accept", "")
    if "authorization" in request.headers or "text/html" not in accept or request.method != "GET":
        return None
    wb = getattr(request.app.state, "workbench", None)
    if wb is None:
        return None
    from gateway.web.render import resource_href

    endpoint = getattr(request.scope.get("endpoint"), "__name__", "")
    target = "/workbench/"
    if endpoint in ("resource", "collection"):
        target = resource_href(wb.node.namespace + request.url.path.lstrip("/"))
    return RedirectResponse(target, status_code=303)


def routes(wb: Workbench) -> list[BaseRoute]:
    from gateway.web import pages

    async def login(request: Request) -> Response:
        return await (_login(wb, request) if request.method == "POST" else _login_form(wb, request))

    return [
        Route("/login", login, methods=["GET", "POST"], include_in_schema=False),
        Route("/logout", _page(wb, _logout), methods=["POST"], include_in_schema=False),
        Route("/workbench/static/workbench.css", _stylesheet_route, methods=["GET"], include_in_schema=False),
        *(
            Route(
                f"/workbench/{path}", _page(wb, handler, operator), methods=methods, include_in_schema=False
            )
            for path, handler, operator, methods in pages.PAGES
        ),
    ]
