"""Certificates made to measure for adversarial tests: issued by the test federation's
development CA (or made to look as if), with whatever flaw a case needs."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gateway.identity.pki import b64_der
from tests.kit import Pki

_KEYS: list[rsa.RSAPrivateKey] = []
_NEXT = itertools.count()


def rsa_key() -> rsa.RSAPrivateKey:
    """An RSA key unlike the last 15 handed out (a pool: 2048-bit keys are slow to make)."""
    i = next(_NEXT) % 16
    if i == len(_KEYS):
        _KEYS.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _KEYS[i]


@dataclass(frozen=True)
class Issuer:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey


def dev_issuing(pki: Pki) -> Issuer:
    """The development issuing CA every test party's certificate comes from."""
    return _load(pki, "issuing")


def dev_root(pki: Pki) -> Issuer:
    return _load(pki, "root")


def _load(pki: Pki, name: str) -> Issuer:
    cert = x509.load_pem_x509_certificate((pki.ca / f"{name}.cert.pem").read_bytes())
    key = serialization.load_pem_private_key((pki.ca / f"{name}.key.pem").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return Issuer(cert, key)


def name(cn: str, party: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if party is not None:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, party))
    return x509.Name(attrs)


_SIGNING = {"digital_signature": True}
_CERTIFYING = {"key_cert_sign": True, "crl_sign": True}


def issue(
    subject: x509.Name,
    issuer: Issuer | None,
    *,
    key: Any = None,
    ca: bool | None = False,
    usage: dict[str, bool] | None = None,
    days: tuple[float, float] = (-1, 30),
    issuer_name: x509.Name | None = None,
    sign_with: rsa.RSAPrivateKey | None = None,
) -> tuple[x509.Certificate, Any]:
    """A certificate for ``subject`` (with a new RSA key unless ``key``), issued by
    ``issuer`` (None: self-signed). ``ca=None`` leaves BasicConstraints out, ``usage``
    {} leaves keyUsage out; ``issuer_name``/``sign_with`` forge the issuer's name or
    signature; ``days`` = validity relative to now."""
    key = key if key is not None else rsa_key()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name or (issuer.cert.subject if issuer else subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    flags = (_CERTIFYING if ca else _SIGNING) if usage is None else usage
    if flags:
        builder = builder.add_extension(_key_usage(flags), critical=True)
    signer = sign_with or (issuer.key if issuer else key)
    return builder.sign(signer, hashes.SHA256()), key


def _key_usage(flags: dict[str, bool]) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{n: flags.get(n, False) for n in names})


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def x5c(*certs: x509.Certificate) -> list[str]:
    return [b64_der(c) for c in certs]
