"""Access tokens a node issues to authenticated parties, and checks on every request.

The token is a JWT the node signs itself (RS256): ``iss`` and ``aud`` are the node's
party id, ``sub`` and ``client_id`` the caller's, valid for an hour. Verifying RS256
costs about as much as serving a resource, so a verified token is remembered (bounded,
keyed by the whole token string); its expiry is still checked on every request.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import RSAKey

from gateway.errors import Unauthorized, refusal
from gateway.identity import jwt
from gateway.identity.pki import Identity
from gateway.policy.model import Caller

__all__ = ["ACCESS_TOKEN_LIFETIME", "TokenIssuer"]

ACCESS_TOKEN_LIFETIME = 3600
_LEEWAY = 10


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token whose signature and claims were checked: who it stands for, until when."""

    caller: Caller
    expires: float


class TokenIssuer:
    def __init__(self, identity: Identity, cache_size: int = 10_000) -> None:
        self.identity = identity
        self._public = RSAKey.import_key(identity.key.public_key())
        self._verified: OrderedDict[str, _Verified] = OrderedDict()
        self._cache_size = cache_size

    def issue(self, party_id: str, now: float, roles: tuple[str, ...] = ()) -> str:
        iat = int(now)
        me = self.identity.party_id
        claims = {
            "iss": me,
            "aud": me,
            "sub": party_id,
            "client_id": party_id,
            "scope": "iSHARE",
            "roles": list(roles),
            "jti": uuid.uuid4().hex,
            "iat": iat,
            "nbf": iat,
            "exp": iat + ACCESS_TOKEN_LIFETIME,
        }
        return jwt.sign(claims, self.identity.key)

    def check(self, token: str, now: float) -> Caller:
        """The caller a bearer token stands for; ``Unauthorized`` saying why not."""
        verified = self._verified.get(token)
        if verified is None:
            verified = self._verify(token, now)
            self._verified[token] = verified
            if len(self._verified) > self._cache_size:
                self._verified.popitem(last=False)
        if verified.expires <= now:
            self._verified.pop(token, None)
            raise Unauthorized(
                "the access token has expired; request a new one at /connect/token", reason="expired"
            )
        return verified.caller

    def remembered(self, token: str, now: float) -> Caller | None:
        """The caller of a token already verified and not expired at ``now``; None when
        ``check`` must decide (a new token, or one that has expired: it says why)."""
        verified = self._verified.get(token)
        return verified.caller if verified is not None and now < verified.expires else None

    def _verify(self, token: str, now: float) -> _Verified:
        jwt.peek_header(token, _malformed)
        claims = jwt.verify(token, self._public, _foreign)
        me = self.identity.party_id
        if claims.get("iss") != me or claims.get("aud") != me:
            raise _foreign("token_foreign", "iss or aud is not this node")
        return _verified(claims, now)


def _verified(claims: dict[str, Any], now: float) -> _Verified:
    """The caller and expiry an access token's claims (this node's own) stand for."""
    sub, exp, jti = claims.get("sub"), claims.get("exp"), claims.get("jti")
    if not isinstance(sub, str) or not sub or not isinstance(jti, str):
        raise Unauthorized("the access token has no subject", reason="claim_missing")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise Unauthorized("the access token has no valid exp", reason="claim_type")
    nbf = claims.get("nbf", 0)
    if isinstance(nbf, int | float) and nbf > now + _LEEWAY:
        raise Unauthorized("the access token is not valid yet", reason="not_yet_valid")
    return _Verified(Caller(sub, _roles(claims)), float(exp))


def _roles(claims: dict[str, Any]) -> frozenset[str]:
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized("the access token's roles are malformed", reason="claim_type")
    return frozenset(roles)


_malformed = refusal(Unauthorized)


def _foreign(reason: str, detail: str) -> Unauthorized:
    """A token this node's key does not verify, or that names another issuer."""
    return Unauthorized(f"the access token was not issued by this node ({detail})", reason=reason)
