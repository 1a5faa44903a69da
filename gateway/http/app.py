"""``create_app(settings)``: one node as an ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import unquote

import httpx
import pyoxigraph as ox
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import __version__
from gateway.audit import AuditLog
from gateway.config import NodeSettings
from gateway.errors import BadRequest, ConfigError, Forbidden, NotFound
from gateway.federation.walk import Budget, Federation
from gateway.http import problems
from gateway.http.auth import Auth, json_response, optional_bearer, reader, signed, token_endpoint
from gateway.http.batch import batch
from gateway.http.catalog import WELL_KNOWN, catalog
from gateway.http.delegation import delegation
from gateway.http.federation import federated_query
from gateway.http.resources import collection, resource
from gateway.http.sparql import sparql
from gateway.identity.client import TokenClient
from gateway.identity.pki import fingerprint, load_chain, load_identity
from gateway.identity.registry_client import RegistryClient
from gateway.identity.replay import replay_cache
from gateway.identity.tokens import TokenIssuer
from gateway.node import Node
from gateway.policy.model import Caller as PolicyCaller
from gateway.policy.model import Grant
from gateway.store.remote import SPARQL_NOT_OFFERED

__all__ = ["create_app", "make_auth", "outbound_http"]


def outbound_http(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The node's one outbound client: timeouts, bounded pools, no redirects."""
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(10.0, connect=3.0),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        follow_redirects=False,
        headers={"user-agent": f"dsgo-gateway/{__version__}"},
    )


def make_auth(settings: NodeSettings, http: httpx.AsyncClient, clock: Callable[[], float]) -> Auth:
    assert settings.keys_dir and settings.registry_url and settings.registry_id
    identity = load_identity(settings.keys_dir)
    if identity.party_id != settings.party_id:
        raise ConfigError(
            settings.file,
            "keys.dir",
            f"the certificate there is {identity.party_id}'s, not {settings.party_id}'s",
        )
    anchors = [fingerprint(cert) for path in settings.registry_ca for cert in load_chain(path)]
    tokens = TokenClient(identity, http, clock)
    registry = RegistryClient(
        settings.registry_url,
        settings.registry_id,
        anchors,
        tokens,
        refresh=settings.registry_refresh,
        lifetime=settings.registry_lifetime,
        clock=clock,
    )
    replay = replay_cache(settings.redis_url, settings.party_id)
    return Auth(identity, TokenIssuer(identity), registry, replay, clock)


def _federation(
    settings: NodeSettings, node: Node, auth: Auth | None, clock: Callable[[], float]
) -> Federation | None:
    """The node's federated query engine; none for an open node (it has no identity)."""
    if auth is None:
        return None
    registry = auth.trust
    assert isinstance(registry, RegistryClient)
    owner = Grant.of((), "owner", everything=True)  # a node reads its own data in full

    collections = settings.base_iri + "collections/"
    member = ox.NamedNode("http://www.w3.org/ns/hydra/core#member")

    async def local(docs: list[str]) -> dict[str, tuple[list[ox.Triple], int]]:
        def read() -> dict[str, tuple[list[ox.Triple], int]]:
            out: dict[str, tuple[list[ox.Triple], int]] = {}
            for doc in docs:
                if doc.startswith(collections):  # the node's own collection: all its members
                    class_iri = node.vocab.expand(unquote(doc[len(collections) :].partition("?")[0]))
                    if class_iri is not None:
                        members = node.access.members(owner, class_iri, settings.base_iri)
                        coll = ox.NamedNode(doc)
                        out[doc] = ([ox.Triple(coll, member, ox.NamedNode(m)) for m in members], 0)
                    continue
                decision = node.access.resource(owner, doc)
                if decision is not None:
                    out[doc] = (decision.triples, decision.withheld)
            return out

        return await asyncio.to_thread(read)

    return Federation(
        settings.party_id,
        settings.base_iri,
        registry.tokens,
        registry.parties,
        local,
        node.vocab.prefixes,
        clock,
    )


async def _sparql_refused(request: Request) -> Response:
    """``/sparql`` on a node whose data is a remote store: not offered, and why."""
    reader(request)  # a caller without a token learns no more than elsewhere
    raise NotFound(SPARQL_NOT_OFFERED)


def create_app(
    settings: NodeSettings,
    *,
    watch: bool = True,
    http: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The node's app. Keys are read here (a wrong key file stops the node before it
    starts); sources are read at start-up and, with ``watch``, re-read when they change.
    ``http`` is the outbound client (tests pass one with an in-process transport)."""
    client = http or outbound_http()
    auth = None if settings.open else make_auth(settings, client, clock)
    node = Node(settings, clock=clock)  # a broken policy file stops the node here
    audit_log = node.audit = AuditLog(settings.audit_path) if settings.audit_path else None

    async def watch_loop() -> None:
        while True:
            await asyncio.sleep(settings.poll_interval)
            await asyncio.to_thread(node.access.refresh)
            await asyncio.to_thread(node.sources.refresh_all)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(node.sources.refresh_all)
        if audit_log is not None:
            audit_log.start()
        task = asyncio.create_task(watch_loop()) if watch else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            node.close()
            if audit_log is not None:
                audit_log.close()
            if auth is not None:
                await auth.replay.close()
            if http is None:
                await client.aclose()

    app = FastAPI(
        title=f"DSGO node {settings.name}",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        # FastAPI's OpenTelemetry hooks cost ~5 µs on every request: off unless wanted
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.auth = auth
    app.state.node = node
    app.state.audit = audit_log
    app.state.sparql_limits = (settings.sparql_timeout, settings.sparql_max_results)
    app.state.federation = _federation(settings, node, auth, clock)
    app.state.federation_clients = frozenset({settings.party_id, *settings.federation_clients})
    app.state.federation_budget = Budget(
        max_documents=settings.federation_max_documents,
        timeout=settings.federation_timeout,
        node_timeout=settings.federation_node_timeout,
        concurrency=settings.federation_concurrency,
    )
    problems.install(app)

    async def health(request: Request) -> Response:
        sources = node.sources.health()
        policy = node.access.health()
        audit = _audit_health(audit_log)
        ok = (
            all(s["status"] == "ok" for s in sources.values())
            and policy["status"] != "failed"
            and audit["status"] in ("ok", "off")
        )
        body: dict[str, Any] = {"status": "ok" if ok else "degraded", "party_id": settings.party_id}
        caller = optional_bearer(request) if auth is not None else None
        if auth is None or (caller is not None and caller.party_id == settings.party_id):
            body.update(namespace=settings.base_iri, sources=sources, policy=policy, audit=audit)  # operators
        else:
            body["sources"] = {name: {"status": s["status"]} for name, s in sources.items()}
            body["policy"] = {"status": policy["status"]}
            body["audit"] = {"status": audit["status"]}
        return json_response(body)

    async def capabilities(request: Request) -> Response:
        public = [
            {"feature": "access token", "url": "/connect/token"},
            {"feature": "capabilities", "url": "/capabilities"},
            {"feature": "health", "url": "/health"},
        ]
        restricted = restricted_features
        if auth is None:
            return json_response({"party_id": settings.party_id, "public": public + restricted})
        caller = optional_bearer(request)
        features: dict[str, Any] = {"public": public}
        if caller is not None:
            features["restricted"] = [{**f, "token_endpoint": "/connect/token"} for f in restricted]
        info = {
            "party_id": settings.party_id,
            "ishare_roles": [{"role": "ServiceProvider"}],
            "supported_versions": [{"version": "2.0", "supported_features": [features]}],
        }
        audience = caller.party_id if caller else None
        return json_response(signed(auth.identity, "capabilities_info", info, audience, clock()))

    async def explain(request: Request) -> Response:
        """The HTTP twin of ``dsgo policy explain``, for the node's own party only."""
        caller = reader(request)
        if auth is not None and caller.party_id != settings.party_id:
            raise Forbidden("policy explanations are for the node's own operators")
        party, iri = request.query_params.get("party"), request.query_params.get("resource")
        if not party or not iri:
            raise BadRequest("give party=PARTY_ID and resource=IRI")
        roles: frozenset[str] = frozenset()
        if auth is not None:
            entry = await auth.trust.party(party)
            roles = frozenset(entry.roles) if entry else frozenset()
        # off the event loop: a node on a remote SPARQL store reads over the network
        reasons = await asyncio.to_thread(node.access.explain, PolicyCaller(party, roles), iri)
        if not reasons:
            raise NotFound(f"no resource {iri} on this node")
        fields = [
            {"field": r.field, "released": r.released, "rules": list(r.rules), "reason": r.reason}
            for r in reasons
        ]
        return json_response({"party": party, "roles": sorted(roles), "resource": iri, "fields": fields})

    #: what callers with a token may use; a read path the node cannot enforce is left out
    restricted_features: list[dict[str, Any]] = [
        {"feature": "description", "url": "/", "formats": ["text/turtle", "application/ld+json"]},
        {"feature": "resource", "url": "/{path}", "namespace": settings.base_iri},
        {"feature": "collection", "url": "/collections/{class}"},
        (
            {"feature": "sparql", "url": "/sparql", "description": "SPARQL 1.1 over the caller's view"}
            if node.remote is None  # a remote store's views cannot be had without copying it
            else {"feature": "sparql", "url": "/sparql", "offered": False, "reason": SPARQL_NOT_OFFERED}
        ),
        {"feature": "delegation", "url": "/delegation"},
        {"feature": "batch", "url": "/resources", "description": "many resources' views in one request"},
    ]
    routes = app.router.routes
    routes.append(Route("/health", health, methods=["GET"]))
    routes.append(Route("/capabilities", capabilities, methods=["GET"]))
    if auth is not None:
        routes.append(Route("/connect/token", token_endpoint(), methods=["POST"]))
    for path in ("/", WELL_KNOWN):
        routes.append(Route(path, catalog, methods=["GET"], include_in_schema=False))
    routes.append(Route("/collections/{cls:path}", collection, methods=["GET"]))
    sparql_route = sparql if node.remote is None else _sparql_refused  # views need copying: refused
    routes.append(Route("/sparql", sparql_route, methods=["GET", "POST"]))
    routes.append(Route("/resources", batch, methods=["POST"]))
    routes.append(Route("/federation/query", federated_query, methods=["POST"]))
    routes.append(Route("/policy/explain", explain, methods=["GET"]))
    routes.append(Route("/delegation", delegation, methods=["POST"]))
    # every other path is a resource in the node's namespace
    routes.insert(0, _resource_route(routes))
    return app


def _resource_route(others: list[Any]) -> Route:
    """The catch-all resource route, tried first: the hot path should not pay a regex per
    route before it. Its pattern leaves out the first path segments of every other route,
    so it takes exactly what a catch-all placed last would."""
    segments = sorted({r.path.strip("/").split("/")[0] for r in others if getattr(r, "path", None)} - {""})
    reserved = "|".join(re.escape(segment) for segment in segments)
    route = Route("/{path:path}", resource, methods=["GET"])
    route.path_regex = re.compile(rf"^/(?!(?:{reserved})(?:/|$))(?P<path>.+)$")
    return route


def _audit_health(log: AuditLog | None) -> dict[str, Any]:
    """``failing`` while batches cannot be written (they wait in memory and are retried),
    with how many reads wait, were written and were dropped (each drop is also a gap entry
    in the log itself)."""
    if log is None:
        return {"status": "off"}
    now = log.status()
    return {
        "status": "failing" if now.last_error else "ok",
        "queued": now.queued,
        "written": now.written,
        "dropped": now.dropped,
        "last_error": now.last_error,
    }
