"""Participant registry entries, as iSHARE satellites publish them.

Both shapes are read: iSHARE v2 (snake_case: ``party_id`` or ``id``,
``adherence.start_date``, ``certificates[].x5t#s256``, ``roles[].role``) and v3 (camelCase
``{id, name, claims}``: the adherence from the DSGO ``dataspaceMembership`` claim, else the
``frameworkCompliance`` one; certificates from active ``x509Certificate`` claims; roles from
``frameworkRole``/``dataspaceRole`` claims). The ``dsgo`` member is this federation's
extension: the IRI namespaces a party owns, the endpoint that serves them, and the
federation's own roles (kept apart from iSHARE's); a party's ``roles`` are both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.identity.trust import normalise_fingerprint

__all__ = ["Party", "TrustedCA", "parse_party", "parse_trusted_list"]


@dataclass(frozen=True, slots=True)
class Party:
    party_id: str
    name: str
    status: str
    start_date: dt.datetime | None
    end_date: dt.datetime | None
    #: upper-case hex SHA-256 fingerprints of the party's registered certificates
    certificates: frozenset[str]
    roles: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    endpoint: str | None = None
    raw: Mapping[str, Any] | None = None

    def active_at(self, now: dt.datetime) -> str | None:
        """None if the party is an active participant at ``now``; else why not."""
        if self.status.lower() != "active":
            return f"{self.party_id} is not active in the registry (status {self.status})"
        if self.start_date is not None and now < self.start_date:
            return f"{self.party_id}'s adherence starts on {self.start_date:%Y-%m-%d}"
        if self.end_date is not None and now >= self.end_date:
            return f"{self.party_id}'s adherence ended on {self.end_date:%Y-%m-%d}"
        return None


@dataclass(frozen=True, slots=True)
class TrustedCA:
    subject: str
    fingerprint: str
    status: str

    @property
    def usable(self) -> bool:
        return self.status.lower() in ("granted", "valid", "active")


def _get(data: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in data:
            return data[name]
    return None


def _date(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if not isinstance(value, str):
        raise ValueError(f"not a date: {value!r}")
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _thumbs(certificates: Any) -> frozenset[str]:
    out = set()
    for cert in certificates or []:
        thumb = _get(cert, "x5t#s256", "x5t#S256", "x5tS256") if isinstance(cert, Mapping) else None
        if isinstance(thumb, str) and thumb:
            out.add(normalise_fingerprint(thumb))
    return frozenset(out)


def _claims(data: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    return [c for c in _get(data, "claims") or [] if isinstance(c, Mapping) and c.get("type") == kind]


_V3_STATUS = {"active": "Active", "revoked": "Revoked"}


def _adherence_v3(data: Mapping[str, Any]) -> dict[str, Any]:
    """v3: the DSGO membership claim (GIR's check), else the framework compliance claim."""
    dsgo = [c for c in _claims(data, "dataspaceMembership") if c.get("dataspaceId") == "EU.DS.NL.DSGO"]
    claims = dsgo or _claims(data, "frameworkCompliance")
    if not claims:
        return {"status": "NotActive"}
    claim = claims[0]
    status = _V3_STATUS.get(str(claim.get("status", "")).lower(), "NotActive")
    return {"status": status, "start_date": claim.get("startDate"), "end_date": claim.get("endDate")}


def _v3_parts(data: Mapping[str, Any]) -> tuple[dict[str, Any], frozenset[str], list[str]]:
    certs = [
        c for c in _claims(data, "x509Certificate") if str(c.get("status", "active")).lower() == "active"
    ]
    roles = [
        str(c["roleId"])
        for k in ("frameworkRole", "dataspaceRole")
        for c in _claims(data, k)
        if c.get("roleId")
    ]
    return _adherence_v3(data), _thumbs(certs), roles


def _v2_parts(data: Mapping[str, Any]) -> tuple[Mapping[str, Any], frozenset[str], list[str]]:
    roles = [
        str(_get(r, "role")) for r in _get(data, "roles") or [] if isinstance(r, Mapping) and _get(r, "role")
    ]
    return _get(data, "adherence") or {}, _thumbs(_get(data, "certificates")), roles


def parse_party(data: Mapping[str, Any]) -> Party:
    """One entry of ``parties_info.data`` (v2) or a v3 ``party``; ValueError if malformed."""
    if not isinstance(data, Mapping):
        raise ValueError("a party entry is not a JSON object")
    party_id = _get(data, "party_id", "partyId", "id")
    if not isinstance(party_id, str) or not party_id:
        raise ValueError("a party entry has no party_id")
    adherence, certs, roles = _v3_parts(data) if "claims" in data else _v2_parts(data)
    ext = _get(data, "dsgo") or {}
    own = [str(r) for r in ext.get("roles", ()) if str(r) not in roles]
    return Party(
        party_id=party_id,
        name=str(_get(data, "party_name", "partyName", "name") or party_id),
        status=str(_get(adherence, "status") or "NotActive"),
        start_date=_date(_get(adherence, "start_date", "startDate")),
        end_date=_date(_get(adherence, "end_date", "endDate")),
        certificates=certs,
        roles=(*roles, *own),
        namespaces=tuple(str(n) for n in ext.get("namespaces", ())),
        endpoint=ext.get("endpoint"),
        raw=data,
    )


def parse_trusted_list(entries: Any) -> list[TrustedCA]:
    if not isinstance(entries, list):
        raise ValueError("the trusted list is not an array")
    out = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise ValueError("a trusted list entry is not a JSON object")
        fp = _get(entry, "certificate_fingerprint", "certificateFingerprint")
        if not isinstance(fp, str):
            raise ValueError("a trusted list entry has no certificate_fingerprint")
        out.append(
            TrustedCA(
                subject=str(_get(entry, "subject") or ""),
                fingerprint=normalise_fingerprint(fp),
                status=str(_get(entry, "status") or "granted"),
            )
        )
    return out
