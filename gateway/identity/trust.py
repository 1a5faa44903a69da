"""The one verifier of signed iSHARE answers and of the certificate chains behind them.

Client assertions (the token endpoint), the participant registry's answers (the registry
client) and delegation evidence (an authorization registry) are all the same thing: a
JWT signed RS256 by the key of the first certificate of its ``x5c`` chain, whose ``iss``
is the party that certificate names. ``verify_signed`` checks the header, the chain and
the signature and returns the claims with the signer's party id; ``check_audience`` and
``check_lifetime`` validate the claims every iSHARE JWT carries. What else a caller
requires (the registered certificate, the registry's own id) is the caller's.

Chains (iSHARE "Certificate Validation", RFC 5280 §6.1 in the subset iSHARE uses): leaf
first; each certificate issued (and signed) by the next, which must be a CA allowed to
sign certificates (BasicConstraints cA, keyUsage keyCertSign); all valid now; the chain
reaches a CA whose SHA-256 fingerprint is on the trusted list. The leaf holds an RSA key
for signing (keyUsage digitalSignature or nonRepudiation), is neither a CA nor
self-signed, and names the party: its subject ``serialNumber`` (iSHARE's test
certificates) or its eIDAS ``organizationIdentifier`` (read as a did:ishare).

Every refusal calls ``fail(reason, detail)`` with a stable reason code.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.identity import jwt
from gateway.identity.jwt import Fail
from gateway.identity.pki import fingerprint, party_ids_of

__all__ = [
    "LEEWAY",
    "LIFETIME",
    "Signed",
    "check_audience",
    "check_chain",
    "check_lifetime",
    "normalise_fingerprint",
    "numeric_date",
    "parse_x5c",
    "verify_signed",
]

#: iSHARE: every signed JWT lives exactly 30 seconds (exp = iat + 30)
LIFETIME = 30
#: seconds of clock skew tolerated on iat, nbf and exp
LEEWAY = 10
_MAX_CHAIN = 5


@dataclass(frozen=True, slots=True)
class Signed:
    """A JWT whose chain and signature were checked: its claims, chain and signer."""

    claims: dict[str, Any]
    chain: tuple[x509.Certificate, ...]
    #: ``iss``, one of the party ids the signing certificate names (its subject
    #: serialNumber or the did:ishare of its organizationIdentifier)
    signer: str


def verify_signed(
    token: str, *, trusted: Iterable[str], now: float, fail: Fail, limit: int = jwt.MAX_TOKEN
) -> Signed:
    """Verify, then decode: the header (RS256, ``x5c``), the chain against ``trusted``
    (fingerprints), the signature with the leaf's key, and ``iss`` = the signer. A token
    longer than ``limit`` is refused unread."""
    header = jwt.peek_header(token, fail, limit)
    chain = parse_x5c(header.get("x5c"), fail)
    names = check_chain(chain, trusted, dt.datetime.fromtimestamp(now, dt.UTC), fail)
    claims = jwt.verify(token, _rsa_key(chain[0], fail), fail)
    signer = claims.get("iss")
    if not isinstance(signer, str) or signer not in names:
        named = ", ".join(sorted(names))
        raise fail("iss_not_signer", f"iss must be a party id of the signer ({named}), got {signer!r}")
    return Signed(claims, tuple(chain), signer)


def check_audience(claims: dict[str, Any], allowed: Collection[str], fail: Fail) -> str:
    """``aud``: one string (iSHARE, not RFC 7519's array), one of ``allowed``."""
    aud = claims.get("aud")
    if isinstance(aud, list):
        raise fail("aud_array", "aud must be one string (iSHARE), not an array")
    if not isinstance(aud, str) or aud not in allowed:
        raise fail("aud_wrong", f"the token is for audience {aud!r}, not for {' or '.join(sorted(allowed))}")
    return aud


def numeric_date(claims: dict[str, Any], name: str, fail: Fail) -> float | None:
    """RFC 7519 §2: a JSON number of seconds (None when absent); iSHARE's historical
    string form and booleans are refused. (JSON has no NaN or infinity: the decoder
    refuses them before any claim is read.)"""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(
            "claim_type",
            f"the {name!r} claim must be a NumericDate (a JSON number), got {type(value).__name__}",
        )
    return float(value)


def check_lifetime(claims: dict[str, Any], now: float, fail: Fail) -> tuple[float, float]:
    """iSHARE: ``exp = iat + 30`` exactly; not issued (``iat``, ``nbf``) after ``now`` and
    not expired at ``now``, give or take ``LEEWAY`` seconds. Returns (iat, exp)."""
    iat, exp = _required_date(claims, "iat", fail), _required_date(claims, "exp", fail)
    nbf = numeric_date(claims, "nbf", fail)
    if exp - iat != LIFETIME:
        raise fail("lifetime_wrong", f"exp must be iat + {LIFETIME} seconds (iSHARE), got {exp - iat:g}")
    if iat > now + LEEWAY or (nbf is not None and nbf > now + LEEWAY):
        raise fail("not_yet_valid", "the token is not valid yet (iat or nbf in the future)")
    if exp <= now - LEEWAY:
        raise fail("expired", "the token has expired")
    return iat, exp


def _required_date(claims: dict[str, Any], name: str, fail: Fail) -> float:
    value = numeric_date(claims, name, fail)
    if value is None:
        raise fail("claim_missing", f"the token has no {name!r} claim")
    return value


def parse_x5c(x5c: object, fail: Fail) -> list[x509.Certificate]:
    """Certificates from an ``x5c`` header: base64 DER (RFC 7515 §4.1.6), or the PEM
    text some iSHARE implementations send. A party sends the same chain with every
    assertion, so parsed chains are remembered (bounded)."""
    if not isinstance(x5c, list) or not x5c:
        raise fail("x5c_missing", "the x5c header must be a non-empty array of certificates")
    if len(x5c) > _MAX_CHAIN:
        raise fail("x5c_too_long", f"the x5c chain has more than {_MAX_CHAIN} certificates")
    if not all(isinstance(entry, str) for entry in x5c):
        raise fail("x5c_missing", "x5c entries must be strings")
    parsed = _parse(tuple(x5c))
    if isinstance(parsed, int):
        raise fail("x5c_not_certificate", f"x5c[{parsed}] is not a certificate (base64 DER or PEM)")
    return list(parsed)


@lru_cache(maxsize=1024)
def _parse(x5c: tuple[str, ...]) -> tuple[x509.Certificate, ...] | int:
    """The certificates, or the index of the first entry that is not one."""
    certs = []
    for i, entry in enumerate(x5c):
        try:
            if "-----BEGIN CERTIFICATE-----" in entry:
                certs.append(x509.load_pem_x509_certificate(entry.encode()))
            else:
                certs.append(
                    x509.load_der_x509_certificate(base64.b64decode("".join(entry.split()), validate=True))
                )
        except (ValueError, binascii.Error):
            return i
    return tuple(certs)


def normalise_fingerprint(value: str) -> str:
    """Upper-case hex of a SHA-256 fingerprint given as hex (any case, with or without
    colons) or as base64url (the RFC 7515 ``x5t#S256`` form)."""
    text = value.strip().replace(":", "")
    if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.upper()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return text.upper()
    return raw.hex().upper() if len(raw) == 32 else text.upper()


def check_chain(
    chain: list[x509.Certificate], trusted: Iterable[str], now: dt.datetime, fail: Fail
) -> frozenset[str]:
    """The party ids the chain's leaf names, once the whole chain is checked (see above)."""
    names = _check_leaf(chain[0], fail)
    for i, cert in enumerate(chain):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise fail(
                "certificate_not_valid_now",
                f"certificate {i} of the chain ({cert.subject.rfc4514_string()}) is not valid now",
            )
    for i in range(1, len(chain)):
        _check_link(chain[i - 1], chain[i], i, fail)
    trusted_set = {normalise_fingerprint(f) for f in trusted}
    if not any(_fingerprint(cert) in trusted_set for cert in chain[1:]):
        raise fail("chain_untrusted", "the certificate chain does not end in a CA on the trusted list")
    return names


def _rsa_key(leaf: x509.Certificate, fail: Fail) -> rsa.RSAPublicKey:
    key = leaf.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise fail("leaf_not_rsa", "the signing certificate does not hold an RSA key")
    return key


def _check_leaf(leaf: x509.Certificate, fail: Fail) -> frozenset[str]:
    _rsa_key(leaf, fail)
    usage = _usage(leaf)
    if usage.ca:
        raise fail("leaf_is_ca", "the signing certificate is a CA certificate, not a party's")
    if leaf.issuer == leaf.subject:
        raise fail("leaf_self_signed", "the signing certificate is self-signed")
    if not usage.signs:
        raise fail("leaf_key_usage", "the signing certificate's keyUsage allows no digital signatures")
    names = party_ids_of(leaf)
    if not names:
        raise fail(
            "leaf_no_party_id",
            "the signing certificate names no party (no serialNumber, no organizationIdentifier)",
        )
    return names


def _check_link(child: x509.Certificate, parent: x509.Certificate, i: int, fail: Fail) -> None:
    usage = _usage(parent)
    if not usage.ca:
        raise fail("issuer_not_ca", f"certificate {i} of the chain is not a CA")
    if not usage.certifies:
        raise fail("issuer_key_usage", f"certificate {i} of the chain may not sign certificates (keyUsage)")
    if not _issued_by(child, parent):
        raise fail(
            "link_signature_invalid", f"certificate {i - 1} of the chain is not issued by certificate {i}"
        )


@dataclass(frozen=True, slots=True)
class _Usage:
    ca: bool  # BasicConstraints cA
    signs: bool  # keyUsage absent, or digitalSignature / nonRepudiation
    certifies: bool  # keyUsage absent, or keyCertSign


@lru_cache(maxsize=4096)
def _usage(cert: x509.Certificate) -> _Usage:
    """What a certificate may be used for (RFC 5280 §4.2.1.3, §4.2.1.9); no keyUsage
    extension means no restriction."""
    try:
        ca = bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        ca = False
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return _Usage(ca, True, True)
    return _Usage(ca, usage.digital_signature or usage.content_commitment, usage.key_cert_sign)


@lru_cache(maxsize=4096)
def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Signature checks are the costly part of a chain, and chains repeat: remembered."""
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@lru_cache(maxsize=4096)
def _fingerprint(cert: x509.Certificate) -> str:
    return fingerprint(cert)
