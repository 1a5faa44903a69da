"""Compact JWS with RS256 only: sign, peek at the header, verify then decode.

A thin layer over joserfc that fixes the algorithm allow-list to RS256 (never
``none``, never an HMAC keyed with a public key), bounds the token size, and turns
every library error into the caller's own error type: each refusal calls the caller's
``fail(reason, detail)`` with a stable reason code (``gateway.errors.refusal``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry

__all__ = ["MAX_ANSWER", "MAX_TOKEN", "Fail", "decode_part", "peek_header", "sign", "verify"]

#: a three-certificate chain in x5c is ~6 kB; anything far larger is refused unread
MAX_TOKEN = 16 * 1024
#: a registry's signed answer holds a page of party entries, each with its certificates
#: (Poort8's iSHARE client allows 2 MiB for a parties_token); still bounded
MAX_ANSWER = 1024 * 1024
_ALGORITHMS = ["RS256"]
_REGISTRY = JWSRegistry(algorithms=_ALGORITHMS)
_REGISTRY.max_header_length = MAX_TOKEN  # x5c chains far exceed joserfc's 512-byte default

#: ``fail(reason, detail)``: the exception a refusal raises (reason: a stable code)
Fail = Callable[[str, str], Exception]


def sign(claims: dict[str, Any], key: rsa.RSAPrivateKey, x5c: list[str] | None = None) -> str:
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if x5c:
        header["x5c"] = x5c
    return jws.serialize_compact(header, orjson.dumps(claims), RSAKey.import_key(key), registry=_REGISTRY)


def decode_part(part: str, what: str, fail: Fail) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise fail("token_malformed", f"the token's {what} is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise fail("token_malformed", f"the token's {what} is not a JSON object")
    return value


def peek_header(token: str, fail: Fail, limit: int = MAX_TOKEN) -> dict[str, Any]:
    """The JOSE header, unverified: only to find the algorithm and the key."""
    if not isinstance(token, str) or not token:
        raise fail("token_malformed", "no token")
    if len(token) > limit:
        raise fail("token_too_large", f"the token is larger than {limit} bytes")
    parts = token.split(".")
    if len(parts) != 3 or not parts[0]:
        raise fail("token_malformed", "not a compact JWS (three base64url parts)")
    header = decode_part(parts[0], "header", fail)
    if header.get("alg") not in _ALGORITHMS:
        raise fail(
            "alg_not_allowed", f"algorithm {header.get('alg')!r} is not allowed; iSHARE requires RS256"
        )
    if not parts[1] or not parts[2]:
        raise fail("token_malformed", "the token has no payload or no signature")
    if "crit" in header:
        raise fail("crit_unsupported", "critical header parameters are not supported")
    return header


def verify(token: str, key: rsa.RSAPublicKey | RSAKey, fail: Fail) -> dict[str, Any]:
    """Check the RS256 signature with ``key``, then return the claims."""
    jwk = key if isinstance(key, RSAKey) else RSAKey.import_key(key)
    try:
        payload = jws.deserialize_compact(token, jwk, registry=_REGISTRY).payload
    except (JoseError, ValueError, TypeError) as exc:
        reason = getattr(exc, "description", None) or getattr(exc, "error", None) or type(exc).__name__
        raise fail("signature_invalid", f"the signature does not verify ({reason})") from None
    try:
        claims = orjson.loads(payload)
    except ValueError:
        raise fail("token_malformed", "the token's payload is not JSON") from None
    if not isinstance(claims, dict):
        raise fail("token_malformed", "the token's payload is not a JSON object")
    return claims
