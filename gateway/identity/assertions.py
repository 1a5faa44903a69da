"""iSHARE client assertions (RFC 7523 private_key_jwt, as iSHARE profiles it).

Made: RS256, ``x5c`` = the party's chain leaf first, ``iss == sub ==`` the client's
party id, ``aud`` = the receiving party's id, a fresh ``jti``, ``exp == iat + 30``.

Checked, in this order (verify, then validate): the header (RS256 only, an ``x5c``
chain), the chain against the trusted list and the signature with the leaf's key
(``trust.verify_signed``), then the claims. RFC 7519 is followed where it is liberal
(NumericDates may be non-integer, ``nbf`` is optional) and iSHARE where it is strict
(``aud`` one string, ``exp - iat == 30``, strings are not NumericDates). Every refusal is
``InvalidClient`` (RFC 6749 §5.2) with a reason code saying which check refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from gateway.errors import InvalidClient, refusal
from gateway.identity import jwt
from gateway.identity.pki import Identity
from gateway.identity.trust import LEEWAY, LIFETIME, check_audience, check_lifetime, verify_signed

__all__ = [
    "ASSERTION_TYPE",
    "LEEWAY",
    "LIFETIME",
    "MAX_JTI",
    "Assertion",
    "make_assertion",
    "verify_assertion",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: the longest ``jti`` accepted (it is kept in the replay cache)
MAX_JTI = 256
_fail = refusal(InvalidClient)


@dataclass(frozen=True, slots=True)
class Assertion:
    party_id: str
    jti: str
    expires: float
    chain: tuple[x509.Certificate, ...]
    claims: dict[str, Any]


def make_assertion(identity: Identity, audience: str, now: float) -> str:
    iat = int(now)
    claims = {
        "iss": identity.party_id,
        "sub": identity.party_id,
        "aud": audience,
        "jti": uuid.uuid4().hex,
        "iat": iat,
        "nbf": iat,
        "exp": iat + LIFETIME,
    }
    return jwt.sign(claims, identity.key, identity.x5c)


def _string(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if value is None:
        raise _fail("claim_missing", f"the assertion has no {name!r} claim")
    if not isinstance(value, str) or not value:
        raise _fail("claim_type", f"the {name!r} claim must be a non-empty string")
    return value


def verify_assertion(
    token: str, *, client_id: str, audience: str, trusted: Iterable[str], now: float
) -> Assertion:
    """A client assertion by ``client_id`` for ``audience``: chain, signature and claims.
    Whether the party is active with this certificate, and replay, are the caller's."""
    signed = verify_signed(token, trusted=trusted, now=now, fail=_fail)
    if signed.signer != client_id:
        raise _fail(
            "signer_not_client", f"the assertion is signed by {signed.signer}, not by client_id {client_id}"
        )
    claims = signed.claims
    if _string(claims, "sub") != client_id:
        raise _fail("sub_not_client", "iss and sub must both be the client's party id")
    check_audience(claims, (audience,), _fail)
    jti = _string(claims, "jti")
    if len(jti) > MAX_JTI:
        raise _fail("jti_too_long", f"the jti claim is longer than {MAX_JTI} characters")
    _, exp = check_lifetime(claims, now, _fail)
    return Assertion(client_id, jti, exp, signed.chain, claims)
