"""The hot path: a resource read whose every decision is already made, answered early.

Most reads repeat one a caller made before: its bearer token is verified, its grant
decided and the representation for that grant rendered (``Node.represent`` caches it).
Such a read costs a few dictionary look-ups, but served through the full application it
would also pay FastAPI's and Starlette's layers (error, telemetry and exception
middleware, body limit, exit stack, router, request wrapper): most of its time.
``HotPath`` sits in front of them all (``gateway.http.app``: ``_NodeApp.front``)
and answers a ``GET`` of a resource exactly as ``gateway.http.resources.resource``
would when everything it needs is at hand: same caller, grant, cache key,
representation, audit record and headers. Anything else (no or a new token, an expired
one, delegation evidence, a query string, an escaped path, a representation not built
yet, a format that cannot be negotiated, an audit log refusing reads) is passed on
untouched to the application, which decides and, when it refuses, says why. The
decisions stay where they are made; this only skips asking twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import GatewayError
from gateway.formats import negotiate
from gateway.http.auth import known_caller
from gateway.http.delegation import EVIDENCE_NAMES
from gateway.http.respond import failed_header, record, reply
from gateway.http.state import NodeState
from gateway.policy.model import Caller

__all__ = ["HotPath", "Known", "answer_or_pass", "known_request"]

log = logging.getLogger("dsgo.node")

_ANONYMOUS = Caller(None)


class Known(NamedTuple):
    """A request's caller, known already, and the headers a hot path reads."""

    caller: Caller
    accept: bytes | None  # the first ``Accept``, as Starlette reads it
    if_none_match: bytes | None
    request_id: bytes  # the first non-empty ``X-Request-Id``, as ``record`` looks for it


def known_request(state: NodeState, scope: Scope) -> Known | None:
    """The caller of a request a hot path may answer (anonymous on an open node, else the
    one ``known_caller`` knows by its token), with the headers it reads; None whenever the
    application must decide: no, a new, an expired or several tokens, delegation evidence
    (it widens the grant)."""
    authorization = accept = inm = None
    request_id = b""
    for name, value in scope["headers"]:
        if name == b"authorization":
            if authorization is not None:
                return None  # several: the application refuses them
            authorization = value
        elif name == b"accept":
            accept = value if accept is None else accept
        elif name == b"if-none-match":
            inm = value if inm is None else inm
        elif name == b"x-request-id":
            request_id = request_id or value
        elif name in EVIDENCE_NAMES:
            return None
    caller = _ANONYMOUS if state.auth is None else None
    if state.auth is not None and authorization is not None:
        caller = known_caller(state.auth, authorization)
    return None if caller is None else Known(caller, accept, inm, request_id)


def answer_or_pass(answer: Callable[[Scope], Response | None], scope: Scope) -> Response | None:
    """``answer(scope)``, or None (the application decides) when it raises: a hot path sits
    in front of the application's error handling, which then answers, as it would have."""
    try:
        return answer(scope)
    except Exception:
        log.exception("a hot path failed; the application answers %s %s", scope["method"], scope["path"])
        return None


class HotPath:
    """ASGI middleware in front of the node's routes (see the module's docstring).
    ``reserved``: the first path segments of the routes that are not resources."""

    def __init__(self, app: ASGIApp, state: NodeState, reserved: frozenset[str]) -> None:
        self.app, self.state, self.reserved = app, state, reserved

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            response = answer_or_pass(self._answer, scope)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> Response | None:
        path: str = scope["path"]
        raw: bytes = (scope.get("raw_path") or path.encode()).partition(b"?")[0]
        if scope["query_string"] or scope.get("root_path") or b"%" in raw:
            return None
        if path[1:].partition("/")[0] in self.reserved:
            return None
        known = known_request(self.state, scope)
        if known is None:
            return None
        caller, accept, inm, request_id = known
        node = self.state.node
        try:
            fmt = negotiate(accept.decode("latin-1") if accept is not None else None)
        except GatewayError:
            return None
        grant = node.access.grant(caller)
        rep = node.cached(("resource", grant.key, node.namespace + raw.decode("latin-1").lstrip("/")), fmt)
        if rep is None:
            return None
        response = reply(rep, inm.decode("latin-1") if inm is not None else None, failed_header(node))
        try:  # no read without its record, made last: a failure before it leaves none
            record(node.audit, scope, caller, rep, request_id)
        except GatewayError:
            return None
        return response
