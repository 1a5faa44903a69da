"""Participant registry entries, as iSHARE satellites publish them.

Both shapes are read: iSHARE v2 (snake_case: ``party_id``, ``adherence.start_date``,
``x5t#s256``) and v3 (camelCase: ``partyId``, ``adherence.startDate``). The registry
answers in v2 shape. The ``dsgo`` member is this federation's extension: the IRI
namespaces a party owns and the endpoint that serves them.
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


def parse_party(data: Mapping[str, Any]) -> Party:
    """One entry of ``parties_info.data`` (v2) or of a v3 party list; ValueError if malformed."""
    party_id = _get(data, "party_id", "partyId")
    if not isinstance(party_id, str) or not party_id:
        raise ValueError("a party entry has no party_id")
    adherence = _get(data, "adherence") or {}
    certs = set()
    for cert in _get(data, "certificates") or []:
        thumb = _get(cert, "x5t#s256", "x5t#S256", "x5tS256")
        if isinstance(thumb, str) and thumb:
            certs.add(normalise_fingerprint(thumb))
    roles = tuple(
        str(_get(r, "role")) for r in _get(data, "roles") or [] if isinstance(r, Mapping) and _get(r, "role")
    )
    ext = _get(data, "dsgo") or {}
    return Party(
        party_id=party_id,
        name=str(_get(data, "party_name", "partyName") or party_id),
        status=str(_get(adherence, "status") or "NotActive"),
        start_date=_date(_get(adherence, "start_date", "startDate")),
        end_date=_date(_get(adherence, "end_date", "endDate")),
        certificates=frozenset(certs),
        roles=roles,
        namespaces=tuple(str(n) for n in ext.get("namespaces", ())),
        endpoint=ext.get("endpoint"),
        raw=data,
    )


def parse_trusted_list(entries: Any) -> list[TrustedCA]:
    if not isinstance(entries, list):
        raise ValueError("the trusted list is not an array")
    out = []
    for entry in entries:
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
