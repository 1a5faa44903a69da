"""The federation's participant registry: the iSHARE satellite API nodes need.

    POST /connect/token                 an access token for a participant (as on any node)
    GET  /parties, /parties/{party_id}  iSHARE v2 parties_token / party_token (10 per page)
    GET  /trusted_list, /versions       trusted_list_token; versions_token (anonymous)
    GET  /capabilities                  capabilities_token (role iShareSatellite)
    GET  /v3/parties, /v3/parties/{partyId}, /v3/trustedList, /v3/capabilities   iSHARE 3.0
    GET  /health

Every answer is a JWT signed by the registry with ``exp = iat + 30`` and ``aud`` = the
requester (``gateway.registry.routes``, shapes in ``gateway.registry.ishare``). Party
entries carry a ``dsgo`` extension: the IRI namespaces the party owns, the endpoint that
serves them, and the federation's own roles. The content comes from one TOML file
(``gateway.registry.settings``), re-read when it changes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from starlette.routing import Route

from gateway import __version__
from gateway.errors import ConfigError
from gateway.http import problems
from gateway.http.auth import Auth, token_endpoint
from gateway.http.openapi import install
from gateway.identity.parties import Party, TrustedCA
from gateway.identity.pki import Identity, load_identity
from gateway.identity.replay import replay_cache
from gateway.identity.tokens import TokenIssuer
from gateway.registry import routes
from gateway.registry.live import LiveSettings
from gateway.registry.routes import RegistryState
from gateway.registry.settings import RegistrySettings

__all__ = ["create_registry_app"]


class _LocalTrust:
    def __init__(self, live: LiveSettings) -> None:
        self._live = live

    async def party(self, party_id: str) -> Party | None:
        return next((p for p in self._live.current().parties if p.party_id == party_id), None)

    async def trusted(self) -> list[TrustedCA]:
        return list(self._live.current().trusted)


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
        auth = Auth(identity, TokenIssuer(identity), _LocalTrust(live), replay, clock)
        app.state.dsgo = RegistryState(auth, live, clock)
        try:
            yield
        finally:
            await replay.close()

    app = FastAPI(
        title=f"DSGO registry {settings.name}", version=__version__, lifespan=lifespan, redoc_url=None
    )
    problems.install(app)

    app.router.routes.extend(
        [
            Route("/connect/token", token_endpoint(), methods=["POST"]),
            Route("/parties", routes.parties, methods=["GET"]),
            Route("/parties/{party_id}", routes.party, methods=["GET"]),
            Route("/trusted_list", routes.trusted_list, methods=["GET"]),
            Route("/versions", routes.versions, methods=["GET"]),
            Route("/capabilities", routes.capabilities, methods=["GET"]),
            Route("/v3/parties", routes.parties_v3, methods=["GET"]),
            Route("/v3/parties/{partyId}", routes.party_v3, methods=["GET"]),
            Route("/v3/trustedList", routes.trusted_list_v3, methods=["GET"]),
            Route("/v3/capabilities", routes.capabilities_v3, methods=["GET"]),
            Route("/health", routes.health, methods=["GET"]),
        ]
    )
    install(app, secured=True, description="The federation's participant registry (iSHARE satellite API).")
    return app
