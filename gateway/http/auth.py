"""Authentication at the HTTP edge, shared by nodes and the registry.

``bearer`` turns an ``Authorization: Bearer`` header into the calling party (or a 401
with ``WWW-Authenticate``); ``token_endpoint`` answers ``POST /connect/token``;
``signed`` wraps an answer in a short-lived JWT as iSHARE satellites do
(``exp = iat + 30``, ``aud`` = the requester).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import Unauthorized
from gateway.identity import jwt
from gateway.identity.pki import Identity
from gateway.identity.replay import ReplayCache
from gateway.identity.token_endpoint import TrustSource, authenticate_client, parse_form
from gateway.identity.tokens import ACCESS_TOKEN_LIFETIME, TokenIssuer
from gateway.policy.model import Caller

__all__ = ["Auth", "bearer", "json_response", "optional_bearer", "reader", "signed", "token_endpoint"]


@dataclass
class Auth:
    """What a service needs to authenticate callers; kept on ``app.state.dsgo.auth`` (the
    node's ``NodeState``, or the registry's state)."""

    identity: Identity
    issuer: TokenIssuer
    trust: TrustSource
    replay: ReplayCache
    clock: Callable[[], float] = time.time


def _auth(request: Request) -> Auth:
    auth: Auth = request.app.state.dsgo.auth
    return auth


def bearer(request: Request) -> Caller:
    header = request.headers.get("authorization")
    auth = _auth(request)
    realm = auth.identity.party_id
    if header is None:
        raise Unauthorized("no bearer token; get one at POST /connect/token", realm)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <access token>'", realm)
    try:
        return auth.issuer.check(token.strip(), auth.clock())
    except Unauthorized as exc:
        raise Unauthorized(exc.detail, realm) from None


def optional_bearer(request: Request) -> Caller | None:
    """The caller if a token is sent (it must then be valid), else None."""
    return bearer(request) if "authorization" in request.headers else None


def signed(identity: Identity, claim: str, payload: Any, audience: str | None, now: float) -> dict[str, str]:
    iat = int(now)
    claims: dict[str, Any] = {
        "iss": identity.party_id,
        "sub": identity.party_id,
        "jti": uuid.uuid4().hex,
        "iat": iat,
        "exp": iat + 30,
        claim: payload,
    }
    if audience is not None:
        claims["aud"] = audience
    return {f"{claim.removesuffix('_info')}_token": jwt.sign(claims, identity.key, identity.x5c)}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def token_endpoint() -> Callable[[Request], Awaitable[Response]]:
    async def connect_token(request: Request) -> Response:
        auth = _auth(request)
        form = parse_form(request.headers.get("content-type"), await request.body())
        now = auth.clock()
        assertion, party = await authenticate_client(
            form, me=auth.identity.party_id, trust=auth.trust, replay=auth.replay, now=now
        )
        token = auth.issuer.issue(assertion.party_id, now, party.roles)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": ACCESS_TOKEN_LIFETIME}
        return json_response(body, headers={"cache-control": "no-store", "pragma": "no-cache"})

    return connect_token


def reader(request: Request) -> Caller:
    """Who reads on a data route: anonymous on an open node, else an authenticated party."""
    if request.app.state.dsgo.auth is None:
        return _ANONYMOUS
    return bearer(request)


_ANONYMOUS = Caller(None)
