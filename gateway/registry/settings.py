"""A registry's configuration: one TOML file, read once into a frozen value.


    [registry]
    party_id = "EU.EORI.NL000000000"
    name = "DSGO development registry"
    host = "127.0.0.1"
    port = 8000
    keys = "../../keys/EU.EORI.NL000000000"    # key.pem + chain.pem
    trusted = ["../../keys/ca/root.cert.pem"]   # CA certificates (files) on the trusted list
    trusted_fingerprints = []                   # or their SHA-256 fingerprints
    redis = "redis://127.0.0.1:6379/0"          # optional shared jti cache

    [[party]]
    id = "EU.EORI.NL000000001"
    name = "Bouwbedrijf"
    status = "Active"                           # Active, NotActive, Revoked, ...
    start = 2024-01-01                          # adherence dates (optional)
    end = 2030-01-01
    certificates = ["../../keys/EU.EORI.NL000000001/chain.pem"]   # leaf first; or
    fingerprints = []                            # x5t#s256 of registered certificates
    roles = ["ServiceProvider"]
    namespaces = ["https://data.bouwbedrijf.example/"]

``DSGO_PARTY_ENDPOINTS=ID=URL,...`` overrides parties' endpoints (docker compose).
Any mistake is one ``ConfigError`` naming the file and the key.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config import PARTY_ID, Table
from gateway.errors import ConfigError, KeyFileError
from gateway.identity.parties import Party, TrustedCA, parse_party
from gateway.identity.pki import b64_der, fingerprint, load_chain
from gateway.registry.ishare import iso, party_entry

__all__ = ["RegistrySettings", "load_registry_settings"]


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    file: Path
    party_id: str
    name: str
    keys_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    trusted: tuple[TrustedCA, ...] = ()
    parties: tuple[Party, ...] = ()
    redis: str | None = None
    entries: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)


def _date(value: Any) -> str | None:
    if value is None or isinstance(value, dt.date):
        return iso(value)
    raise TypeError


def load_registry_settings(file: Path | str, environ: Mapping[str, str] | None = None) -> RegistrySettings:
    """Read and check a registry's TOML file. ``DSGO_PARTY_ENDPOINTS="ID=URL,..."`` (from
    the environment) replaces the ``endpoint`` of the named parties: the same file then
    serves a local run and a docker compose deployment, where nodes answer elsewhere."""
    file = Path(file)
    environ = os.environ if environ is None else environ
    data = _read(file)
    base = file.resolve().parent
    reg = data.get("registry")
    if not isinstance(reg, dict):
        raise ConfigError(file, "registry", "missing; expected a [registry] table")
    allowed = {"party_id", "name", "host", "port", "keys", "trusted", "trusted_fingerprints", "redis"}
    Table(file, "registry", reg, allowed)  # unknown keys are named
    party_id = reg.get("party_id")
    if not isinstance(party_id, str) or not PARTY_ID.fullmatch(party_id):
        raise ConfigError(
            file, "registry.party_id", "expected an iSHARE party id such as EU.EORI.NL000000000"
        )
    if not isinstance(reg.get("keys"), str):
        raise ConfigError(
            file, "registry.keys", "expected the folder with the registry's key.pem and chain.pem"
        )
    trusted = _trusted(file, base, reg)
    entries = _entries(file, base, data.get("party", []), party_id, environ)
    parties = [parse_party(entry) for entry in entries]
    port = reg.get("port", 8000)
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(file, "registry.port", "expected a port number")
    return RegistrySettings(
        file=file.resolve(),
        party_id=party_id,
        name=str(reg.get("name", party_id)),
        keys_dir=base / reg["keys"],
        host=str(reg.get("host", "127.0.0.1")),
        port=port,
        trusted=tuple(trusted),
        parties=tuple(parties),
        redis=reg.get("redis"),
        entries=tuple(entries),
    )


def _read(file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(file, "", "no such file") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(file, "", f"not a readable TOML file ({exc})") from None


def _trusted(file: Path, base: Path, reg: Mapping[str, Any]) -> list[TrustedCA]:
    trusted: list[TrustedCA] = []
    for i, path in enumerate(reg.get("trusted", [])):
        try:
            for cert in load_chain(base / path):
                trusted.append(TrustedCA(cert.subject.rfc4514_string(), fingerprint(cert), "granted"))
        except (KeyFileError, TypeError) as exc:
            raise ConfigError(
                file, f"registry.trusted[{i}]", f"expected a CA certificate file ({exc})"
            ) from None
    for fp in reg.get("trusted_fingerprints", []):
        trusted.append(TrustedCA("", fp.upper().replace(":", ""), "granted"))
    return trusted


def _entries(
    file: Path, base: Path, tables: Any, registrar: str, environ: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The [[party]] tables as v2 entries, with ``DSGO_PARTY_ENDPOINTS`` applied."""
    entries = []
    overrides = _endpoint_overrides(file, environ.get("DSGO_PARTY_ENDPOINTS", ""))
    for i, raw in enumerate(tables):
        entry = _party_entry(file, base, f"party[{i}]", raw, registrar)
        if entry["party_id"] in overrides:
            entry["dsgo"]["endpoint"] = overrides.pop(entry["party_id"])
            entry["capability_url"] = entry["dsgo"]["endpoint"] + "/capabilities"
        entries.append(entry)
    if overrides:
        unknown = ", ".join(sorted(overrides))
        raise ConfigError("DSGO_PARTY_ENDPOINTS", "", f"names parties not in {file}: {unknown}")
    return entries


def _certificates(file: Path, base: Path, where: str, raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The party's registered certificates (v2 ``certificates``): files, or fingerprints."""
    certificates = []
    for i, path in enumerate(raw.get("certificates", [])):
        try:
            leaf = load_chain(base / path)[0]
        except (KeyFileError, TypeError) as exc:
            raise ConfigError(
                file, f"{where}.certificates[{i}]", f"expected a certificate file ({exc})"
            ) from None
        certificates.append(
            {
                "subject_name": leaf.subject.rfc4514_string(),
                "certificate_type": "x509",
                "enabled_from": _date(leaf.not_valid_before_utc),
                "x5c": b64_der(leaf),
                "x5t#s256": fingerprint(leaf),
            }
        )
    for fp in raw.get("fingerprints", []):
        certificates.append({"certificate_type": "x509", "x5t#s256": str(fp)})
    return certificates


def _party_entry(file: Path, base: Path, where: str, raw: Any, registrar: str) -> dict[str, Any]:
    """A [[party]] table as an iSHARE v2 party_info entry (``gateway.registry.ishare``)."""
    allowed = {
        "id",
        "name",
        "status",
        "start",
        "end",
        "certificates",
        "fingerprints",
        "roles",
        "namespaces",
        "endpoint",
    }
    if not isinstance(raw, dict):
        raise ConfigError(file, where, "expected a table")
    Table(file, where, raw, allowed)
    pid = raw.get("id")
    if not isinstance(pid, str) or not PARTY_ID.fullmatch(pid):
        raise ConfigError(file, f"{where}.id", "expected an iSHARE party id")
    certificates = _certificates(file, base, where, raw)
    try:
        start, end = _date(raw.get("start")), _date(raw.get("end"))
    except TypeError:
        raise ConfigError(file, f"{where}.start", "expected TOML dates (start = 2024-01-01)") from None
    endpoint = raw.get("endpoint")
    namespaces = raw.get("namespaces", [])
    if not isinstance(namespaces, list) or not all(
        isinstance(n, str) and n.endswith("/") for n in namespaces
    ):
        raise ConfigError(file, f"{where}.namespaces", "expected IRIs ending in '/'")
    return party_entry(
        party_id=pid,
        name=str(raw.get("name", pid)),
        status=str(raw.get("status", "Active")),
        start=start,
        end=end,
        certificates=certificates,
        roles=[str(r) for r in raw.get("roles", [])],
        registrar=registrar,
        namespaces=namespaces,
        endpoint=endpoint,
    )


def _endpoint_overrides(file: Path, text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        party, sep, url = item.partition("=")
        if (
            not sep
            or not PARTY_ID.fullmatch(party.strip())
            or not url.strip().startswith(("http://", "https://"))
        ):
            raise ConfigError(
                "DSGO_PARTY_ENDPOINTS", "", f"expected PARTY_ID=http(s)://host:port,..., got {item!r}"
            )
        out[party.strip()] = url.strip().rstrip("/")
    return out
