"""Certificate chains: read from ``x5c``, checked against a trusted list.

iSHARE: the chain in ``x5c`` is leaf first; each certificate must be issued (and
signed) by the next, all must be valid now, and the chain must reach a CA whose
SHA-256 fingerprint is on the scheme's trusted list. The leaf must not be a CA nor
self-signed, and must carry the party id in its subject ``serialNumber``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable, Iterable
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.identity.pki import fingerprint, party_id_of

__all__ = ["check_chain", "normalise_fingerprint", "parse_x5c"]

Fail = Callable[[str], Exception]
_MAX_CHAIN = 5


def parse_x5c(x5c: object, fail: Fail) -> list[x509.Certificate]:
    """Certificates from an ``x5c`` header: base64 DER (RFC 7515 §4.1.6), or the PEM
    text some iSHARE implementations send. A party sends the same chain with every
    assertion, so parsed chains are remembered (bounded)."""
    if not isinstance(x5c, list) or not x5c:
        raise fail("the x5c header must be a non-empty array of certificates")
    if len(x5c) > _MAX_CHAIN:
        raise fail(f"the x5c chain has more than {_MAX_CHAIN} certificates")
    if not all(isinstance(entry, str) for entry in x5c):
        raise fail("x5c entries must be strings")
    parsed = _parse(tuple(x5c))
    if isinstance(parsed, str):
        raise fail(parsed)
    return list(parsed)


@lru_cache(maxsize=1024)
def _parse(x5c: tuple[str, ...]) -> tuple[x509.Certificate, ...] | str:
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
            return f"x5c[{i}] is not a certificate (base64 DER or PEM)"
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


def check_chain(chain: list[x509.Certificate], trusted: Iterable[str], now: dt.datetime, fail: Fail) -> None:
    leaf = chain[0]
    if not isinstance(leaf.public_key(), rsa.RSAPublicKey):
        raise fail("the signing certificate does not hold an RSA key")
    if _is_ca(leaf):
        raise fail("the signing certificate is a CA certificate, not a party's")
    if leaf.issuer == leaf.subject:
        raise fail("the signing certificate is self-signed")
    if party_id_of(leaf) is None:
        raise fail("the signing certificate has no serialNumber (party id) in its subject")
    trusted_set = {normalise_fingerprint(f) for f in trusted}
    for i, cert in enumerate(chain):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise fail(f"certificate {i} of the chain ({cert.subject.rfc4514_string()}) is not valid now")
    for i in range(len(chain) - 1):
        child, parent = chain[i], chain[i + 1]
        if not _is_ca(parent):
            raise fail(f"certificate {i + 1} of the chain is not a CA")
        if not _issued_by(child, parent):
            raise fail(f"certificate {i} of the chain is not issued by certificate {i + 1}")
    if not any(_fingerprint(cert) in trusted_set for cert in chain[1:]):
        raise fail("the certificate chain does not end in a CA on the trusted list")


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


@lru_cache(maxsize=4096)
def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
