"""Authentication at the HTTP edge, shared by nodes and the registry.

``bearer`` turns an ``Authorization: Bearer`` header into the calling party (or a 401
with ``WWW-Authenticate``; a repeated or malformed header is a 400 ``invalid_request``,
RFC 6750 §3.1); ``token_endpoint`` answers ``POST /connect/token``;
``signed`` wraps an answer in a short-lived JWT as iSHARE satellites do
(``exp = iat + 30``, ``aud`` = the requester).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.config import PARTY_ID
from gateway.errors import InvalidRequest, Unauthorized
from gateway.http.openapi import Body, Operation, Reply, describe
from gateway.identity import jwt
from gateway.identity.pki import Identity
from gateway.identity.replay import ReplayCache
from gateway.identity.token_endpoint import TrustSource, authenticate_client, parse_form
from gateway.identity.tokens import ACCESS_TOKEN_LIFETIME, TokenIssuer
from gateway.policy.model import Caller

__all__ = [
    "Auth",
    "bearer",
    "json_response",
    "known_caller",
    "optional_bearer",
    "reader",
    "signed",
    "token_endpoint",
]


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


#: RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *")


def _authorization(request: Request, realm: str) -> str | None:
    """The one Authorization header's value; a repeated one is refused, not guessed at."""
    values = [v for k, v in request.scope["headers"] if k == b"authorization"]
    if len(values) > 1:
        raise _malformed("send one Authorization header, not several", realm)
    return values[0].decode("latin-1") if values else None


def _malformed(detail: str, realm: str) -> InvalidRequest:
    challenge = f'Bearer realm="{realm}", error="invalid_request"'
    return InvalidRequest(detail, {"www-authenticate": challenge}, reason="authorization_malformed")


def bearer(request: Request) -> Caller:
    auth = _auth(request)
    realm = auth.identity.party_id
    header = _authorization(request, realm)
    token = _TOKENS.get(header) if header is not None else None
    if token is None:
        token = _token(header, realm)
    try:
        return auth.issuer.check(token, auth.clock())
    except Unauthorized as exc:
        raise Unauthorized(exc.detail, realm, reason=exc.reason) from None


#: Authorization header values seen well-formed -> their token: a caller sends the same
#: header on every request, and matching a ~1 kB token costs more than the rest of the check
_TOKENS: dict[str, str] = {}


def _token(header: str | None, realm: str) -> str:
    """The access token of an ``Authorization: Bearer`` header (RFC 6750 §2.1)."""
    if header is None:
        raise Unauthorized("no bearer token; get one at POST /connect/token", realm, reason="token_missing")
    if header.partition(" ")[0].lower() != "bearer":
        raise Unauthorized(
            "the Authorization header must be 'Bearer <access token>'", realm, reason="scheme_not_bearer"
        )
    match = _BEARER.fullmatch(header)
    if match is None:
        raise _malformed("the Authorization header must be 'Bearer <access token>' (RFC 6750 §2.1)", realm)
    if len(_TOKENS) >= 10_000:
        _TOKENS.clear()
    _TOKENS[header] = match[1]
    return match[1]


#: ``_TOKENS`` again, found by a header's last bytes (its token's signature: they differ
#: per token) and confirmed by comparing the whole header: a dictionary keyed by the whole
#: ~1 kB header would hash all of it on every read, a fifth of what the hot path costs
_BY_TAIL: dict[bytes, tuple[bytes, str]] = {}
_TAIL = 32


def known_caller(auth: Auth, header: bytes) -> Caller | None:
    """The caller of an ``Authorization`` header value (the request's only one) whose
    token was verified before and is still valid now: expiry is checked on every request.
    None whenever ``bearer`` must decide, and say why."""
    tail = header[-_TAIL:]
    held = _BY_TAIL.get(tail)
    if held is not None and held[0] == header:
        token = held[1]
    else:
        found = _TOKENS.get(header.decode("latin-1"))
        if found is None:
            return None
        if len(_BY_TAIL) >= 10_000:
            _BY_TAIL.clear()
        _BY_TAIL[tail] = (header, found)
        token = found
    return auth.issuer.remembered(token, auth.clock())


def optional_bearer(request: Request) -> Caller | None:
    """The caller if a token is sent (it must then be valid), else None."""
    return bearer(request) if "authorization" in request.headers else None


def signed(
    identity: Identity, claim: str, payload: Any, audience: str | None, now: float, key: str | None = None
) -> dict[str, str]:
    """``{key: JWT}`` with ``payload`` as ``claim``; ``key`` defaults to the v2 name
    (``parties_info`` -> ``parties_token``); v3 names it (``partiesToken``)."""
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
    key = key or f"{claim.removesuffix('_info')}_token"
    return {key: jwt.sign(claims, identity.key, identity.x5c)}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


_TOKEN_FORM = {
    "type": "object",
    "required": ["grant_type", "client_id", "client_assertion_type", "client_assertion"],
    # other parameters are ignored (RFC 6749 §3.2), but none may be repeated
    "additionalProperties": {"type": "string"},
    "properties": {
        "grant_type": {"const": "client_credentials"},
        "scope": {
            "type": "string",
            "pattern": "(^| )iSHARE( |$)",
            "description": "must contain iSHARE if given; iSHARE when omitted",
        },
        "client_id": {
            "type": "string",
            "pattern": PARTY_ID.pattern,
            "description": "the client's party id (EORI or did:ishare)",
        },
        "client_assertion_type": {"const": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
        "client_assertion": {
            "type": "string",
            "pattern": r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
            "description": "the iSHARE client assertion (RS256, x5c)",
        },
    },
}
_TOKEN_REPLY = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in"],
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer"},
    },
}
TOKEN = Operation(
    "An access token for an iSHARE client assertion (OAuth 2.0 client_credentials, RFC 7523)",
    "The assertion's chain must end in a trusted CA, the party be active in the registry and its "
    "registered certificate be the signer; each jti is accepted once.",
    ("iSHARE",),
    auth="none",
    body=Body({"application/x-www-form-urlencoded": _TOKEN_FORM}),
    replies={200: Reply("the access token (no refresh token)", {"application/json": _TOKEN_REPLY})},
    errors=(400, 401, 503),
    operation_id="getAccessToken",
)


def token_endpoint() -> Callable[[Request], Awaitable[Response]]:
    @describe(post=TOKEN)
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
