"""Signed bodies: a JWS (RS256, ``x5c``) over the exact bytes of an HTTP body, detached.

A notification is POSTed as DSGO's plain notification object; its signature travels in
the ``x-jws-signature`` header as a JWS with *detached content* (RFC 7515 Appendix F:
``header..signature``, the payload being the body's base64url, left out). Detached
rather than compact because:

- the body stays DSGO's notification object byte for byte, readable by a consumer that
  does not verify (a compact JWS would wrap it in base64url);
- the signature covers the bytes on the wire, so nothing is canonicalised or re-encoded;
- the same signature serves the replay feed, where the body is sent *attached* (the
  compact form ``header.payload.signature``): one signature per notification, verified
  the same way whichever way it came.

The header is ``{"alg": "RS256", "typ": "JOSE", "x5c": [...]}``; what the body says of
issuer and audience (``provider_id``, ``consumer_id``) is the body's, checked by the
receiver after the signature (``gateway.notify.receive``).
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

from gateway.identity.pki import Identity

__all__ = ["MAX_BODY", "Fail", "attach", "detach", "header_of", "sign_body", "split", "verify_body"]

#: bodies larger than this are not signed or verified
MAX_BODY = 256 * 1024
_REGISTRY = JWSRegistry(algorithms=["RS256"])
_REGISTRY.max_header_length = 16 * 1024  # an x5c chain
_REGISTRY.max_payload_length = MAX_BODY * 2


#: makes the caller's error from a reason
Fail = Callable[[str], Exception]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_body(body: bytes, identity: Identity) -> str:
    """The detached JWS (``header..signature``) over ``body``, signed with the party's key."""
    header = {"alg": "RS256", "typ": "JOSE", "x5c": identity.x5c}
    compact = jws.serialize_compact(header, body, RSAKey.import_key(identity.key), registry=_REGISTRY)
    return detach(compact)


def detach(compact: str) -> str:
    head, _, rest = compact.partition(".")
    return f"{head}..{rest.rpartition('.')[2]}"


def attach(detached: str, body: bytes) -> str:
    """The compact JWS the detached one stands for, with ``body`` as its payload."""
    head, _, sig = detached.partition("..")
    return f"{head}.{_b64(body)}.{sig}"


def split(compact: str, fail: Fail) -> tuple[str, bytes]:
    """(detached signature, payload bytes) of a compact JWS; ``fail`` if it is none."""
    parts = compact.split(".") if isinstance(compact, str) else []
    if len(parts) != 3 or not all(parts):
        raise fail("not a compact JWS (three base64url parts)")
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
    except ValueError:
        raise fail("the JWS payload is not base64url") from None
    return f"{parts[0]}..{parts[2]}", payload


def header_of(detached: str, fail: Fail) -> dict[str, Any]:
    """The protected header of a detached JWS, unverified (to find the chain): RS256 only."""
    if not isinstance(detached, str) or len(detached) > 32 * 1024:
        raise fail("no signature, or one larger than 32 kB")
    head, sep, sig = detached.partition("..")
    if not sep or not head or not sig or "." in sig:
        raise fail("the signature must be a detached JWS (header..signature, RFC 7515 Appendix F)")
    try:
        header = orjson.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError):
        raise fail("the JWS header is not base64url-encoded JSON") from None
    if not isinstance(header, dict) or header.get("alg") != "RS256":
        raise fail("the JWS header must be a JSON object with alg RS256")
    if "crit" in header:
        raise fail("critical header parameters are not supported")
    return header


def verify_body(detached: str, body: bytes, key: rsa.RSAPublicKey, fail: Fail) -> None:
    """Check that ``detached`` is an RS256 signature by ``key`` over exactly ``body``."""
    if len(body) > MAX_BODY:
        raise fail(f"the body is larger than {MAX_BODY} bytes")
    try:
        jws.deserialize_compact(attach(detached, body), RSAKey.import_key(key), registry=_REGISTRY)
    except (JoseError, ValueError, TypeError) as exc:
        reason = getattr(exc, "description", None) or getattr(exc, "error", None) or type(exc).__name__
        raise fail(f"the signature does not verify over this body ({reason})") from None
