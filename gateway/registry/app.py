"""The federation's participant registry: the iSHARE satellite API subset nodes need.

    POST /connect/token          an access token for a participant (as on any node)
    GET  /parties                parties_token; filters: name (with * wildcards), eori,
                                 active_only, role, namespace (an IRI: who owns it)
    GET  /parties/{party_id}     party_token
    GET  /trusted_list           trusted_list_token: the CAs participants' chains must end in
    GET  /versions               versions_token
    GET  /capabilities, /health

Every answer is a JWT signed by the registry with ``exp = iat + 30`` and ``aud`` = the
requester; every route but the token endpoint, capabilities and health needs a bearer
token. Party entries are iSHARE v2 (snake_case) with a ``dsgo`` extension: the IRI
namespaces the party owns and the endpoint that serves them. The content comes from
one TOML file (``gateway.registry.settings``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import __version__
from gateway.errors import ConfigError, NotFound
from gateway.http import problems
from gateway.http.auth import Auth, bearer, json_response, optional_bearer, signed, token_endpoint
from gateway.http.openapi import JSON_OBJECT, Operation, Reply, describe, install, query, signed_token
from gateway.identity.parties import Party, TrustedCA
from gateway.identity.pki import Identity, load_identity
from gateway.identity.replay import replay_cache
from gateway.identity.tokens import TokenIssuer
from gateway.registry.live import LiveSettings
from gateway.registry.settings import RegistrySettings

__all__ = ["create_registry_app"]


@dataclass(frozen=True, slots=True)
class RegistryState:
    """What the registry's routes share (``app.state.dsgo``, as on a node)."""

    auth: Auth


class _LocalTrust:
    def __init__(self, live: LiveSettings) -> None:
        self._live = live

    async def party(self, party_id: str) -> Party | None:
        return next((p for p in self._live.current().parties if p.party_id == party_id), None)

    async def trusted(self) -> list[TrustedCA]:
        return list(self._live.current().trusted)


def _entries(settings: RegistrySettings) -> dict[str, tuple[Mapping[str, Any], Party]]:
    return {e["party_id"]: (e, p) for e, p in zip(settings.entries, settings.parties, strict=True)}


def _matches(entry: Mapping[str, Any], party: Party, query: Mapping[str, str], now: dt.datetime) -> bool:
    name = query.get("name")
    if name and not fnmatch.fnmatchcase(party.name.lower(), name.lower()):
        return False
    eori = query.get("eori") or query.get("party_id")
    if eori and party.party_id != eori:
        return False
    if query.get("active_only", "").lower() == "true" and party.active_at(now) is not None:
        return False
    role = query.get("role")
    if role and role.lower() not in {r.lower() for r in party.roles}:
        return False
    namespace = query.get("namespace")
    return not namespace or any(namespace.startswith(ns) for ns in party.namespaces)


def _identity(settings: RegistrySettings) -> Identity:
    identity = load_identity(settings.keys_dir)
    if identity.party_id != settings.party_id:
        raise ConfigError(
            settings.file,
            "registry.keys",
            f"the certificate there is {identity.party_id}'s, not {settings.party_id}'s",
        )
    return identity


def create_registry_app(settings: RegistrySettings, clock: Callable[[], float] = time.time) -> FastAPI:
    identity = _identity(settings)
    live = LiveSettings(settings)  # parties and trusted CAs follow the file while it runs

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        replay = replay_cache(settings.redis, settings.party_id)
        app.state.dsgo = RegistryState(
            Auth(identity, TokenIssuer(identity), _LocalTrust(live), replay, clock)
        )
        try:
            yield
        finally:
            await replay.close()

    app = FastAPI(
        title=f"DSGO registry {settings.name}", version=__version__, lifespan=lifespan, redoc_url=None
    )
    problems.install(app)

    @describe(get=_PARTIES)
    async def parties(request: Request) -> Response:
        caller = bearer(request)
        now = dt.datetime.fromtimestamp(clock(), dt.UTC)
        data = [e for e, p in _entries(live.current()).values() if _matches(e, p, request.query_params, now)]
        info = {"count": len(data), "data": data}
        return json_response(signed(identity, "parties_info", info, caller.party_id, clock()))

    @describe(get=_PARTY)
    async def party(request: Request) -> Response:
        caller = bearer(request)
        found = _entries(live.current()).get(request.path_params["party_id"])
        if found is None:
            raise NotFound(f"no party {request.path_params['party_id']} in this registry")
        return json_response(signed(identity, "party_info", found[0], caller.party_id, clock()))

    @describe(get=_TRUSTED)
    async def trusted_list(request: Request) -> Response:
        caller = bearer(request)
        body = [
            {
                "subject": ca.subject,
                "certificate_fingerprint": ca.fingerprint,
                "validity": "valid",
                "status": ca.status,
            }
            for ca in live.current().trusted
        ]
        return json_response(signed(identity, "trusted_list", body, caller.party_id, clock()))

    @describe(get=_VERSIONS)
    async def versions(request: Request) -> Response:
        caller = bearer(request)
        body = [{"version_number": "2.0", "enabled_from": "2024-01-01T00:00:00Z", "version_status": "active"}]
        return json_response(signed(identity, "versions_info", body, caller.party_id, clock()))

    @describe(get=_CAPABILITIES)
    async def capabilities(request: Request) -> Response:
        caller = optional_bearer(request)
        public = [{"feature": "access token", "url": "/connect/token", "token_endpoint": "/connect/token"}]
        restricted = [
            {"feature": f, "url": u, "token_endpoint": "/connect/token"}
            for f, u in (
                ("parties", "/parties"),
                ("party", "/parties/{party_id}"),
                ("trusted list", "/trusted_list"),
                ("versions", "/versions"),
            )
        ]
        features: dict[str, Any] = {"public": public}
        if caller is not None:
            features["restricted"] = restricted
        info = {
            "party_id": settings.party_id,
            "ishare_roles": [{"role": "SchemeOwner"}],
            "supported_versions": [{"version": "2.0", "supported_features": [features]}],
        }
        return json_response(
            signed(identity, "capabilities_info", info, caller.party_id if caller else None, clock())
        )

    @describe(get=_HEALTH)
    async def health(request: Request) -> Response:
        return json_response(
            {"status": "ok", "party_id": settings.party_id, "parties": len(live.current().parties)}
        )

    app.router.routes.extend(
        [
            Route("/connect/token", token_endpoint(), methods=["POST"]),
            Route("/parties", parties, methods=["GET"]),
            Route("/parties/{party_id}", party, methods=["GET"]),
            Route("/trusted_list", trusted_list, methods=["GET"]),
            Route("/versions", versions, methods=["GET"]),
            Route("/capabilities", capabilities, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
    install(app, secured=True, description="The federation's participant registry (iSHARE satellite API).")
    return app


_TAGS = ("iSHARE",)
_PARTIES = Operation(
    "Participants, filtered (iSHARE v2 parties_token)",
    tags=_TAGS,
    parameters=(
        query("name", "the party's name; * is a wildcard"),
        query("eori", "the party's id"),
        query("party_id", "the party's id"),
        query("active_only", "true: only active participants"),
        query("role", "an iSHARE role"),
        query("namespace", "an IRI: the party owning its namespace"),
    ),
    replies={200: signed_token("parties_token", "the matching parties")},
    operation_id="getParties",
)
_PARTY = Operation(
    "One participant (iSHARE party_token)",
    tags=_TAGS,
    replies={200: signed_token("party_token", "the party")},
    errors=(404,),
    operation_id="getParty",
)
_TRUSTED = Operation(
    "The certificate authorities participants' chains must end in",
    tags=_TAGS,
    replies={200: signed_token("trusted_list_token", "the trusted list")},
    operation_id="getTrustedList",
)
_VERSIONS = Operation(
    "The iSHARE versions this registry speaks",
    tags=_TAGS,
    replies={200: signed_token("versions_token", "the versions")},
    operation_id="getVersions",
)
_CAPABILITIES = Operation(
    "iSHARE capabilities of the registry",
    tags=_TAGS,
    auth="optional",
    replies={200: signed_token("capabilities_token", "the capabilities")},
    operation_id="getCapabilities",
)
_HEALTH = Operation(
    "The registry's health",
    auth="none",
    replies={200: Reply("ok", {"application/json": JSON_OBJECT})},
    operation_id="getHealth",
)
