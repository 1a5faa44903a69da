"""Development PKI: a federation test CA and per-party keys and certificates.

As in iSHARE, the party id sits in the certificate subject's ``serialNumber``
attribute, and a party's chain file holds its leaf, the issuing CA and the root (leaf
first). Files are never overwritten unless asked (``force``); private keys are written
with mode 0600.

    keys/ca/root.cert.pem  root.key.pem  issuing.cert.pem  issuing.key.pem
    keys/<PARTY>/key.pem  cert.pem  chain.pem

A party whose certificate comes from a real CA (an eIDAS/PKIoverheid provider, as iSHARE
requires) makes its key and a certificate signing request instead (``make_request``):
the CA returns the certificate, saved as ``cert.pem`` and, with its CA chain,
``chain.pem``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gateway.errors import KeyFileError

__all__ = [
    "Identity",
    "b64_der",
    "did_of",
    "fingerprint",
    "load_chain",
    "load_identity",
    "make_ca",
    "make_party",
    "make_request",
    "party_id_of",
    "party_ids_of",
]

_KEY_SIZE = 2048


@dataclass(frozen=True, slots=True)
class Identity:
    """A party's signing key and certificate chain (leaf first)."""

    party_id: str
    key: rsa.RSAPrivateKey
    chain: tuple[x509.Certificate, ...]

    @property
    def x5c(self) -> list[str]:
        return [b64_der(c) for c in self.chain]

    def __repr__(self) -> str:  # secrets print as ***
        return f"Identity(party_id={self.party_id!r}, key=***, chain={len(self.chain)} certificates)"


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER encoding, upper-case hex, as on iSHARE's trusted list."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()


def b64_der(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def party_id_of(cert: x509.Certificate) -> str | None:
    """The party a certificate names: its serialNumber (iSHARE's test certificates carry
    the EORI there), else the did:ishare its organizationIdentifier gives."""
    values = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    return str(values[0].value) if values else did_of(cert)


def did_of(cert: x509.Certificate) -> str | None:
    """``did:ishare:EU.<country>.<organizationIdentifier>`` (iSHARE party identification:
    the organizationIdentifier of ETSI EN 319 412-1, e.g. ``NTRNL-12345678``, holds the
    register and its country), or None if the certificate has none."""
    values = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)
    org = str(values[0].value) if values else ""
    if len(org) < 7 or org[5] != "-":
        return None
    return f"did:ishare:EU.{org[3:5]}.{org}"


def party_ids_of(cert: x509.Certificate) -> frozenset[str]:
    """Every party id a certificate names (its serialNumber and its did:ishare)."""
    values = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    return frozenset(i for i in (str(values[0].value) if values else None, did_of(cert)) if i)


def load_chain(path: Path) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such certificate file (make it with `dsgo keys party`)") from None
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a PEM certificate chain ({exc})") from None
    return certs


def load_identity(folder: Path) -> Identity:
    """``key.pem`` and ``chain.pem`` of a party folder made by ``make_party``."""
    chain = load_chain(folder / "chain.pem")
    try:
        key = serialization.load_pem_private_key((folder / "key.pem").read_bytes(), password=None)
    except FileNotFoundError:
        raise KeyFileError(
            f"{folder / 'key.pem'}: no such key file (make it with `dsgo keys party`)"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"{folder / 'key.pem'}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{folder / 'key.pem'}: iSHARE needs an RSA key")
    if key.public_key().public_numbers() != chain[0].public_key().public_numbers():  # type: ignore[union-attr]
        raise KeyFileError(f"{folder}: key.pem does not match the first certificate of chain.pem")
    party = party_id_of(chain[0])
    if party is None:
        raise KeyFileError(f"{folder / 'chain.pem'}: the leaf has no serialNumber (party id) in its subject")
    return Identity(party, key, tuple(chain))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(cn: str, serial: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if serial:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    attrs += [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DSGO development"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "NL"),
    ]
    return x509.Name(attrs)


def _cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    ca: bool,
    days: int,
) -> x509.Certificate:
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=not ca,
                key_encipherment=not ca,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _refuse_overwrite(paths: list[Path], force: bool) -> None:
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise KeyFileError(f"{existing[0]} exists; pass --force to replace it (this makes a new key)")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(folder: Path, *, force: bool = False, name: str = "DSGO Development") -> list[Path]:
    """A root CA and an issuing CA under ``folder``; returns the files written."""
    files = [folder / n for n in ("root.cert.pem", "root.key.pem", "issuing.cert.pem", "issuing.key.pem")]
    _refuse_overwrite(files, force)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
    root_name = _name(f"TEST {name} Root CA")
    root = _cert(root_name, root_key, root_name, root_key, ca=True, days=3650)
    issuing_key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
    issuing_name = _name(f"TEST {name} Issuing CA")
    issuing = _cert(issuing_name, issuing_key, root_name, root_key, ca=True, days=1825)
    _write(files[0], _pem(root))
    _write(files[1], _key_pem(root_key), secret=True)
    _write(files[2], _pem(issuing))
    _write(files[3], _key_pem(issuing_key), secret=True)
    return files


def make_party(
    party_id: str,
    folder: Path,
    ca_folder: Path,
    *,
    name: str | None = None,
    force: bool = False,
    days: int = 825,
) -> list[Path]:
    """A key and a certificate for ``party_id``, issued by the development CA."""
    files = [folder / n for n in ("key.pem", "cert.pem", "chain.pem")]
    _refuse_overwrite(files, force)
    try:
        issuing = x509.load_pem_x509_certificate((ca_folder / "issuing.cert.pem").read_bytes())
        issuing_key = serialization.load_pem_private_key((ca_folder / "issuing.key.pem").read_bytes(), None)
        root = x509.load_pem_x509_certificate((ca_folder / "root.cert.pem").read_bytes())
    except FileNotFoundError as exc:
        raise KeyFileError(
            f"{exc.filename}: no development CA here; make it first with `dsgo keys ca`"
        ) from None
    assert isinstance(issuing_key, rsa.RSAPrivateKey)
    key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
    leaf = _cert(_name(name or party_id, party_id), key, issuing.subject, issuing_key, ca=False, days=days)
    _write(files[0], _key_pem(key), secret=True)
    _write(files[1], _pem(leaf))
    _write(files[2], _pem(leaf) + _pem(issuing) + _pem(root))
    return files


def make_request(party_id: str, folder: Path, *, name: str | None = None, force: bool = False) -> list[Path]:
    """A key and a certificate signing request (PKCS #10) for ``party_id``, for a real CA:
    subject CN = the organisation, serialNumber = the party id (as iSHARE certificates)."""
    files = [folder / "key.pem", folder / "request.csr.pem"]
    _refuse_overwrite(files, force)
    key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name or party_id),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, party_id),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NL"),
        ]
    )
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    _write(files[0], _key_pem(key), secret=True)
    _write(files[1], request.public_bytes(serialization.Encoding.PEM))
    return files
