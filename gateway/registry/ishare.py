"""The registry's answers in the shapes iSHARE writes them: v2 (snake_case) and v3 (camelCase).

v2 follows the iSHARE v2 satellite documentation and the v2.2.1 OpenAPI specification
(``iSHAREScheme/openapi``): party entries with ``party_id`` *and* ``id`` (2.0 and 2.2 name
it differently; both are emitted), ``capability_url``, ``registrar_id``, ``adherence``,
``additional_info``, ``agreements``, ``certificates``, ``roles`` (iSHARE roles only) and
``auth_registries``; dates as RFC 3339 with milliseconds (``2023-01-31T00:00:00.000Z``);
an open end is a date far in the future, as the spec asks of non-expiring agreements.
v3 follows the 3.0 specification: ``{id, name, alsoKnownAs, claims}`` with
``frameworkCompliance``, ``dataspaceMembership``, ``frameworkRole``/``dataspaceRole`` and
``x509Certificate`` claims, and ``partiesInfo`` paged by ``page``/``pageSize``. The
federation's own roles and its namespaces live in the ``dsgo`` extension member, apart
from the iSHARE roles. docs/ishare.md records each choice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "DSGO_DATASPACE",
    "FAR_FUTURE",
    "ISHARE_ROLES",
    "capabilities_v2",
    "capabilities_v3",
    "iso",
    "page_of",
    "party_entry",
    "party_v3",
    "trusted_v2",
    "trusted_v3",
    "versions",
]

#: the roles iSHARE defines (v2.2.1 Role_definition); any other is the federation's own
ISHARE_ROLES = frozenset(
    {
        "ServiceConsumer",
        "ServiceProvider",
        "EntitledParty",
        "AuthorisationRegistry",
        "IdentityProvider",
        "IdentityBroker",
        "ParticipantRegistry",
        "iShareSatellite",
    }
)
DSGO_DATASPACE = "EU.DS.NL.DSGO"
FAR_FUTURE = "9999-12-31T23:59:59.000Z"
_CLAIMS = uuid.UUID("6f1c1d52-5a4e-4b8e-9a57-2b7f0e3d9c11")  # namespace of claim ids


def iso(value: dt.date | dt.datetime | None) -> str | None:
    """A date as the spec writes it (RFC 3339, UTC, milliseconds)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return f"{value.isoformat()}T00:00:00.000Z"


def party_entry(
    *,
    party_id: str,
    name: str,
    status: str,
    start: str | None,
    end: str | None,
    certificates: Sequence[Mapping[str, Any]],
    roles: Iterable[str],
    registrar: str,
    namespaces: Sequence[str],
    endpoint: str | None,
) -> dict[str, Any]:
    """One v2 ``parties_info.data`` entry."""
    start, end = start or iso(dt.date(1970, 1, 1)), end or FAR_FUTURE
    roles = list(roles)
    own = [r for r in roles if r in ISHARE_ROLES]
    return {
        "party_id": party_id,
        "id": party_id,
        "party_name": name,
        "capability_url": f"{endpoint}/capabilities" if endpoint else "",
        "registrar_id": registrar,
        "adherence": {"status": status, "start_date": start, "end_date": end},
        "additional_info": {
            "description": "",
            "logo": "",
            "website": "",
            "company_phone": "",
            "company_email": "",
            "publicly_publishable": False,
            "countries_operation": [],
            "sector_industry": [],
            "tags": "",
        },
        "agreements": [],
        "certificates": [dict(c) for c in certificates],
        "roles": [
            {
                "role": r,
                "start_date": start,
                "end_date": end,
                "loa": "High",
                "compliancy_verified": True,
                "legal_adherence": True,
            }
            for r in own
        ],
        "auth_registries": [],
        "dsgo": {
            "namespaces": list(namespaces),
            "endpoint": endpoint,
            "roles": [r for r in roles if r not in ISHARE_ROLES],
        },
    }


def _status_v3(adherence: str) -> str:
    return {"active": "active", "revoked": "revoked"}.get(adherence.lower(), "inactive")


def _claim(entry: Mapping[str, Any], kind: str, key: str, **fields: Any) -> dict[str, Any]:
    adherence = entry["adherence"]
    return {
        "id": str(uuid.uuid5(_CLAIMS, f"{entry['party_id']}/{kind}/{key}")),
        "type": kind,
        "registrarId": entry["registrar_id"],
        "status": _status_v3(adherence["status"]),
        "startDate": adherence["start_date"],
        "endDate": adherence["end_date"],
        **fields,
    }


def party_v3(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The v3 ``party`` of a v2 entry: the same facts as claims."""
    url = entry["capability_url"] or None
    where = {"capabilityUrl": url} if url else {}
    role = {"loa": "high", "compliancyVerified": "yes", "legalAdherence": "yes"}
    claims = [
        _claim(entry, "frameworkCompliance", "iSHARE", frameworkId="iSHARE", **where),
        _claim(
            entry,
            "dataspaceMembership",
            DSGO_DATASPACE,
            dataspaceId=DSGO_DATASPACE,
            legalAdherence="yes",
            **where,
        ),
        *(
            _claim(entry, "frameworkRole", r["role"], frameworkId="iSHARE", roleId=r["role"], **role)
            for r in entry["roles"]
        ),
        *(
            _claim(entry, "dataspaceRole", r, dataspaceId=DSGO_DATASPACE, roleId=r, **role)
            for r in entry["dsgo"]["roles"]
        ),
        *(_certificate_v3(entry, c) for c in entry["certificates"]),
    ]
    return {
        "id": entry["party_id"],
        "name": entry["party_name"],
        "alsoKnownAs": [],
        "claims": claims,
        "dsgo": entry["dsgo"],
    }


def _certificate_v3(entry: Mapping[str, Any], cert: Mapping[str, Any]) -> dict[str, Any]:
    return _claim(
        entry,
        "x509Certificate",
        cert["x5t#s256"],
        subjectName=cert.get("subject_name", ""),
        certificateType=cert.get("certificate_type", "x509"),
        x5c=cert.get("x5c", ""),
        **{"x5t#s256": cert["x5t#s256"]},
    ) | {"status": "active"}


def page_of(items: Sequence[Any], page: int, size: int) -> tuple[list[Any], int]:
    """Page ``page`` (from 1) of ``size`` items, and how many pages there are."""
    pages = max(1, -(-len(items) // size))
    return list(items[(page - 1) * size : page * size]), pages


def trusted_v2(cas: Iterable[Any]) -> list[dict[str, str]]:
    return [
        {
            "subject": ca.subject,
            "certificate_fingerprint": ca.fingerprint,
            "validity": "valid",
            "status": ca.status,
        }
        for ca in cas
    ]


def trusted_v3(cas: Iterable[Any]) -> list[dict[str, str]]:
    return [
        {
            "subject": ca.subject,
            "certificateFingerprint": ca.fingerprint,
            "validity": "valid",
            "status": ca.status,
        }
        for ca in cas
    ]


def versions() -> list[dict[str, Any]]:
    """``versions_info`` (v2 satellite ``/versions``): the versions this registry speaks."""
    return [
        {
            "version_name": "2.0.0",
            "valid_from": "2024-01-01T00:00:00.000Z",
            "valid_to": None,
            "version_status": "active",
        },
        {
            "version_name": "3.0.0",
            "valid_from": "2025-11-01T00:00:00.000Z",
            "valid_to": None,
            "version_status": "active",
        },
    ]


def _feature(base: str, feature: str, path: str, description: str, token: bool) -> dict[str, str]:
    out = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"dsgo:feature:{path}")).upper(),
        "feature": feature,
        "description": description,
        "url": base + path,
    }
    if token:
        out["token_endpoint"] = base + "/connect/token"
    return out


#: (feature, path, description, public) of the registry
_REGISTRY_FEATURES = (
    ("capabilities", "/capabilities", "Retrieves iSHARE capabilities", True),
    ("access token", "/connect/token", "Obtains access token", True),
    ("versions", "/versions", "Retrieves the iSHARE versions this registry supports", True),
    ("parties", "/parties", "Lists and searches parties, 10 per page", False),
    ("party", "/parties/{party_id}", "Retrieves one party", False),
    ("trusted list", "/trusted_list", "Retrieves the trusted certificate authorities", False),
)


def capabilities_v2(party_id: str, base: str, restricted: bool) -> dict[str, Any]:
    """``capabilities_info`` (v2): features with ``id``, ``feature``, ``description`` and
    absolute ``url``s; the restricted ones only for a caller with a token."""
    public = [_feature(base, f, p, d, p != "/connect/token") for f, p, d, pub in _REGISTRY_FEATURES if pub]
    features: dict[str, Any] = {"public": public}
    if restricted:
        features["restricted"] = [
            _feature(base, f, p, d, True) for f, p, d, pub in _REGISTRY_FEATURES if not pub
        ]
    return {
        "party_id": party_id,
        "ishare_roles": [{"role": "iShareSatellite"}],
        "supported_versions": [{"version": "2.0", "supported_features": [features]}],
    }


#: (identifier = the spec's operationId, title, path) of the registry's v3 services
_V3_SERVICES = (
    ("get-capabilities-token", "Capabilities", "/v3/capabilities", True),
    ("request-oauth-token", "Access token", "/connect/token", True),
    ("get-parties-list-token", "Parties", "/v3/parties", False),
    ("get-single-party-token", "Party", "/v3/parties/{partyId}", False),
    ("get-trusted-list", "Trusted list", "/v3/trustedList", False),
)


def capabilities_v3(base: str, restricted: bool) -> dict[str, Any]:
    """``capabilitiesInfo`` (v3): ``publicServices`` and, with a token, ``restrictedServices``."""

    def service(identifier: str, title: str, path: str) -> dict[str, Any]:
        return {
            "identifier": identifier,
            "title": title,
            "endpointURL": base + path,
            "tokenEndpoint": base + "/connect/token",
            "status": "active",
            "serviceType": "framework-defined",
            "version": {"capabilityVersion": "1.0", "compliesWithFrameworkVersions": ["3.0"]},
            "methods": ["POST" if path == "/connect/token" else "GET"],
        }

    out: dict[str, Any] = {"publicServices": [service(i, t, p) for i, t, p, pub in _V3_SERVICES if pub]}
    if restricted:
        out["restrictedServices"] = [service(i, t, p) for i, t, p, pub in _V3_SERVICES if not pub]
    return out
