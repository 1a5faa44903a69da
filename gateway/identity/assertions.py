"""iSHARE client assertions (RFC 7523 private_key_jwt, as iSHARE profiles it).

Made: RS256, ``x5c`` = the party's chain leaf first, ``iss == sub ==`` the client's
party id, ``aud`` = the receiving party's id, a fresh ``jti``, ``exp == iat + 30``.

Checked, in this order (verify, then validate): the header (RS256 only, an ``x5c``
chain), the signature with the leaf's key, then the claims. RFC 7519 is followed where
it is liberal (NumericDates may be non-integer, ``nbf`` is optional) and iSHARE where
it is strict (``aud`` one string, ``exp - iat == 30``, strings are not NumericDates).
Every refusal is ``InvalidClient`` (RFC 6749 §5.2) saying what was wrong.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.errors import InvalidClient
from gateway.identity import jwt
from gateway.identity.pki import Identity, party_ids_of
from gateway.identity.trust import parse_x5c

__all__ = ["ASSERTION_TYPE", "LEEWAY", "LIFETIME", "Assertion", "make_assertion", "verify_assertion"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
LIFETIME = 30  # iSHARE: exp = iat + 30
LEEWAY = 10  # seconds of clock skew tolerated


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


def _numeric_date(claims: dict[str, Any], name: str, required: bool = True) -> float | None:
    """RFC 7519 §2: a JSON number of seconds; iSHARE's historical string form is refused."""
    if name not in claims:
        if required:
            raise InvalidClient(f"the assertion has no {name!r} claim")
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidClient(
            f"the {name!r} claim must be a NumericDate (a JSON number), got {type(value).__name__}"
        )
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidClient(f"the {name!r} claim is not a finite number")
    return float(value)


def _string(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if value is None:
        raise InvalidClient(f"the assertion has no {name!r} claim")
    if not isinstance(value, str) or not value:
        raise InvalidClient(f"the {name!r} claim must be a non-empty string")
    return value


def verify_assertion(token: str, *, client_id: str, audience: str, now: float) -> Assertion:
    """Signature and claims of a client assertion; trust and replay are the caller's."""
    header = jwt.peek_header(token, InvalidClient)
    chain = parse_x5c(header.get("x5c"), InvalidClient)
    leaf_key = chain[0].public_key()
    if not isinstance(leaf_key, rsa.RSAPublicKey):
        raise InvalidClient("the signing certificate does not hold an RSA key")
    claims = jwt.verify(token, leaf_key, InvalidClient)

    iss, sub = _string(claims, "iss"), _string(claims, "sub")
    if iss != sub:
        raise InvalidClient("iss and sub must both be the client's party id")
    if iss != client_id:
        raise InvalidClient(f"the assertion is issued by {iss!r}, not by client_id {client_id!r}")
    aud = claims.get("aud")
    if isinstance(aud, list):
        raise InvalidClient("aud must be one string (iSHARE), not an array")
    if aud != audience:
        raise InvalidClient(f"the assertion is for audience {aud!r}, not for this party ({audience})")
    jti = _string(claims, "jti")
    if len(jti) > 256:
        raise InvalidClient("the jti claim is longer than 256 characters")
    iat = _numeric_date(claims, "iat")
    exp = _numeric_date(claims, "exp")
    nbf = _numeric_date(claims, "nbf", required=False)
    assert iat is not None and exp is not None
    if exp - iat != LIFETIME:
        raise InvalidClient(f"exp must be iat + {LIFETIME} seconds (iSHARE), got {exp - iat:g}")
    if iat > now + LEEWAY or (nbf is not None and nbf > now + LEEWAY):
        raise InvalidClient("the assertion is not valid yet (iat or nbf in the future)")
    if exp <= now - LEEWAY:
        raise InvalidClient("the assertion has expired")
    if client_id not in party_ids_of(chain[0]):
        raise InvalidClient(
            f"the signing certificate is not {client_id}'s (neither its serialNumber nor its "
            "organizationIdentifier names it)"
        )
    return Assertion(iss, jti, exp, tuple(chain), claims)
