"""The registry's routes: iSHARE v2 at the root, iSHARE 3.0 under ``/v3``.

v2 (the satellite API, snake_case): ``/parties`` (10 per ``page``, ``count``/``data``),
``/parties/{party_id}``, ``/trusted_list``, ``/versions`` (anonymous) and ``/capabilities``.
v3 (camelCase, ``partyToken`` and friends; the 3.0 specification names no version in its
paths, so this registry serves it under a versioned prefix, as the 2.x specifications
write ``/[v2.2]/parties``): ``/v3/parties`` (``page``, ``pageSize`` up to 100),
``/v3/parties/{partyId}``, ``/v3/trustedList`` and ``/v3/capabilities``. Both read the same
entries; every answer is a JWT the registry signs (``exp = iat + 30``, ``aud`` = the
requester, none for an anonymous one). docs/ishare.md records each choice.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import BadRequest, NotFound
from gateway.http.auth import Auth, bearer, json_response, optional_bearer, signed
from gateway.http.openapi import JSON_OBJECT, Operation, Reply, describe, query, signed_token
from gateway.identity.parties import Party
from gateway.registry import ishare
from gateway.registry.live import LiveSettings

__all__ = [
    "RegistryState",
    "capabilities",
    "capabilities_v3",
    "health",
    "parties",
    "parties_v3",
    "party",
    "party_v3",
    "trusted_list",
    "trusted_list_v3",
    "versions",
]

PAGE_SIZE = 10  # iSHARE v2: /parties answers 10 per page
MAX_PAGE_SIZE = 100  # iSHARE 3.0: pageSize at most 100


@dataclass(frozen=True, slots=True)
class RegistryState:
    """What the registry's routes share (``app.state.dsgo``, as on a node)."""

    auth: Auth
    live: LiveSettings
    clock: Callable[[], float]


def _state(request: Request) -> RegistryState:
    state: RegistryState = request.app.state.dsgo
    return state


def _answer(
    request: Request, claim: str, payload: Any, audience: str | None, key: str | None = None
) -> Response:
    state = _state(request)
    return json_response(signed(state.auth.identity, claim, payload, audience, state.clock(), key))


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _entries(request: Request) -> list[tuple[Mapping[str, Any], Party]]:
    settings = _state(request).live.current()
    return list(zip(settings.entries, settings.parties, strict=True))


def _int(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= high:
        raise BadRequest(f"{name} must be an integer from 1 to {high}, got {raw!r}")
    return int(raw)


def _like(pattern: str | None, value: str) -> bool:
    """iSHARE search: case-insensitive, ``*`` a wildcard; no pattern matches anything."""
    return not pattern or fnmatch.fnmatchcase(value.lower(), pattern.lower().replace("?", "[?]"))


def _named(party: Party, query: Mapping[str, str]) -> bool:
    return _like(query.get("name"), party.name) and _like(
        query.get("eori") or query.get("party_id") or query.get("id"), party.party_id
    )


def _matches(party: Party, query: Mapping[str, str], now: dt.datetime) -> bool:
    if not _named(party, query):
        return False
    if query.get("active_only", "").lower() == "true" and party.active_at(now) is not None:
        return False
    role = query.get("role")
    if role and role.lower() not in {r.lower() for r in party.roles}:
        return False
    namespace = query.get("namespace")
    return not namespace or any(namespace.startswith(ns) for ns in party.namespaces)


def _found(request: Request) -> list[Mapping[str, Any]]:
    now = dt.datetime.fromtimestamp(_state(request).clock(), dt.UTC)
    return [entry for entry, party in _entries(request) if _matches(party, request.query_params, now)]


def _one(request: Request, name: str) -> Mapping[str, Any]:
    wanted = request.path_params[name]
    for entry, party in _entries(request):
        if party.party_id == wanted:
            return entry
    raise NotFound(f"no party {wanted} in this registry")


_FILTERS = (
    query("name", "the party's name; * is a wildcard"),
    query("eori", "the party's id (EORI or did:ishare); * is a wildcard"),
    query("party_id", "the party's id (as eori)"),
    query("active_only", "true: only active participants"),
    query("role", "a role, iSHARE's or the federation's"),
    query("namespace", "an IRI: the party owning its namespace (dsgo extension)"),
    query("page", "page number, from 1", {"type": "integer", "minimum": 1, "maximum": 10**6}),
)
_TAGS = ("iSHARE v2",)
_TAGS_V3 = ("iSHARE 3.0",)


@describe(
    get=Operation(
        "Participants, filtered, 10 per page (iSHARE v2 parties_token)",
        "parties_info is {count: all matches, total_count, data: this page's entries}.",
        _TAGS,
        parameters=_FILTERS,
        replies={200: signed_token("parties_token", "the matching parties")},
        errors=(400,),
        operation_id="getParties",
    )
)
async def parties(request: Request) -> Response:
    caller = bearer(request)
    found = _found(request)
    data, _ = ishare.page_of(found, _int(request, "page", 1, 10**6), PAGE_SIZE)
    info = {"count": len(found), "total_count": len(found), "data": data}
    return _answer(request, "parties_info", info, caller.party_id)


@describe(
    get=Operation(
        "One participant (iSHARE v2 party_token)",
        tags=_TAGS,
        replies={200: signed_token("party_token", "the party's entry")},
        errors=(404,),
        operation_id="getParty",
    )
)
async def party(request: Request) -> Response:
    caller = bearer(request)
    return _answer(request, "party_info", _one(request, "party_id"), caller.party_id)


@describe(
    get=Operation(
        "The certificate authorities participants' chains must end in (iSHARE v2)",
        tags=_TAGS,
        replies={200: signed_token("trusted_list_token", "the trusted list")},
        operation_id="getTrustedList",
    )
)
async def trusted_list(request: Request) -> Response:
    caller = bearer(request)
    cas = _state(request).live.current().trusted
    return _answer(request, "trusted_list", ishare.trusted_v2(cas), caller.party_id)


@describe(
    get=Operation(
        "The iSHARE versions this registry speaks (anonymous, as iSHARE v2 allows)",
        tags=_TAGS,
        auth="optional",
        replies={
            200: signed_token(
                "versions_token", "versions_info: version_name, valid_from, valid_to, version_status"
            )
        },
        operation_id="getVersions",
    )
)
async def versions(request: Request) -> Response:
    caller = optional_bearer(request)
    return _answer(request, "versions_info", ishare.versions(), caller.party_id if caller else None)


@describe(
    get=Operation(
        "iSHARE v2 capabilities of the registry (role iShareSatellite)",
        tags=_TAGS,
        auth="optional",
        replies={200: signed_token("capabilities_token", "the capabilities")},
        operation_id="getCapabilities",
    )
)
async def capabilities(request: Request) -> Response:
    caller = optional_bearer(request)
    me = _state(request).auth.identity.party_id
    info = ishare.capabilities_v2(me, _base(request), caller is not None)
    return _answer(request, "capabilities_info", info, caller.party_id if caller else None)


@describe(
    get=Operation(
        "Participants, paged (iSHARE 3.0 partiesToken)",
        tags=_TAGS_V3,
        parameters=(
            query("id", "the party's id"),
            query("name", "the party's name; * is a wildcard"),
            query("page", "page number, from 1", {"type": "integer", "minimum": 1, "maximum": 10**6}),
            query(
                "pageSize", "parties per page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}
            ),
        ),
        replies={200: signed_token("partiesToken", "partiesInfo: the pagination and data")},
        errors=(400,),
        operation_id="getPartiesV3",
    )
)
async def parties_v3(request: Request) -> Response:
    caller = bearer(request)
    found = _found(request)
    page = _int(request, "page", 1, 10**6)
    size = _int(request, "pageSize", PAGE_SIZE, MAX_PAGE_SIZE)
    data, pages = ishare.page_of(found, page, size)
    info = {
        "currentPage": page,
        "pageSize": size,
        "totalPages": pages,
        "totalCount": len(found),
        "count": len(data),
        "data": [ishare.party_v3(e) for e in data],
    }
    return _answer(request, "partiesInfo", info, caller.party_id, "partiesToken")


@describe(
    get=Operation(
        "One participant (iSHARE 3.0 partyToken)",
        tags=_TAGS_V3,
        replies={200: signed_token("partyToken", "partyInfo: id, name, alsoKnownAs, claims")},
        errors=(404,),
        operation_id="getPartyV3",
    )
)
async def party_v3(request: Request) -> Response:
    caller = bearer(request)
    info = ishare.party_v3(_one(request, "partyId"))
    return _answer(request, "partyInfo", info, caller.party_id, "partyToken")


@describe(
    get=Operation(
        "The trusted certificate authorities (iSHARE 3.0 trustedListToken)",
        tags=_TAGS_V3,
        replies={200: signed_token("trustedListToken", "trustedList")},
        operation_id="getTrustedListV3",
    )
)
async def trusted_list_v3(request: Request) -> Response:
    caller = bearer(request)
    cas = _state(request).live.current().trusted
    return _answer(request, "trustedList", ishare.trusted_v3(cas), caller.party_id, "trustedListToken")


@describe(
    get=Operation(
        "iSHARE 3.0 capabilities of the registry (publicServices, restrictedServices)",
        tags=_TAGS_V3,
        auth="optional",
        replies={200: signed_token("capabilitiesToken", "capabilitiesInfo")},
        operation_id="getCapabilitiesV3",
    )
)
async def capabilities_v3(request: Request) -> Response:
    caller = optional_bearer(request)
    info = ishare.capabilities_v3(_base(request), caller is not None)
    return _answer(
        request, "capabilitiesInfo", info, caller.party_id if caller else None, "capabilitiesToken"
    )


@describe(
    get=Operation(
        "The registry's health",
        auth="none",
        replies={200: Reply("ok", {"application/json": JSON_OBJECT})},
        operation_id="getHealth",
    )
)
async def health(request: Request) -> Response:
    state = _state(request)
    body = {
        "status": "ok",
        "party_id": state.auth.identity.party_id,
        "parties": len(state.live.current().parties),
    }
    return json_response(body)
