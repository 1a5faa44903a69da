"""``create_app(settings)``: one node as an ASGI application, assembled from its parts.

The engines are built once (identity, the node's store and policy, the audit log, the
federated query engine) into one ``NodeState``; the routes come from their own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Scope

from gateway import __version__
from gateway.audit import AuditLog
from gateway.config import NodeSettings
from gateway.errors import ConfigError, NotFound
from gateway.federation.walk import Budget, Federation
from gateway.http import problems
from gateway.http.auth import Auth, reader, token_endpoint
from gateway.http.batch import batch
from gateway.http.capabilities import capabilities
from gateway.http.catalog import WELL_KNOWN, catalog
from gateway.http.cors import cors
from gateway.http.delegation import delegation
from gateway.http.explain import explain
from gateway.http.federation import federated_query
from gateway.http.health import health, live, ready
from gateway.http.hot import HotPath
from gateway.http.hot_sparql import SparqlHotPath
from gateway.http.openapi import Operation, describe, install
from gateway.http.resources import collection, resource
from gateway.http.sparql import sparql
from gateway.http.state import NodeState
from gateway.http.subscriptions import make_notifications
from gateway.http.subscriptions import routes as subscription_routes
from gateway.http.vocab import vocabulary
from gateway.identity.client import TokenClient
from gateway.identity.pki import fingerprint, load_chain, load_identity
from gateway.identity.registry_client import RegistryClient
from gateway.identity.replay import replay_cache
from gateway.identity.tokens import TokenIssuer
from gateway.node import Node
from gateway.sparql.pool import QueryPool, on_exit_signals
from gateway.startup import load_apart
from gateway.store.remote import SPARQL_NOT_OFFERED
from gateway.web.sessions import Sessions, session_key
from gateway.web.workbench import Workbench, browser_redirect
from gateway.web.workbench import routes as web_routes

__all__ = ["check_workers", "create_app", "from_env", "make_auth", "outbound_http"]

log = logging.getLogger("dsgo.node")


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
    pins = [fingerprint(load_chain(path)[0]) for path in settings.registry_certificates]
    tokens = TokenClient(identity, http, clock)
    registry = RegistryClient(
        settings.registry_url,
        settings.registry_id,
        anchors,
        tokens,
        refresh=settings.registry_refresh,
        lifetime=settings.registry_lifetime,
        timeout=settings.registry_timeout,
        clock=clock,
        pins=pins,
    )
    replay = replay_cache(settings.redis_url, settings.party_id)
    return Auth(identity, TokenIssuer(identity), registry, replay, clock)


def check_workers(settings: NodeSettings, workers: int) -> None:
    """What ``dsgo serve --workers N`` (N > 1) needs: the workers share the jti replay cache
    through Redis (``node.redis``: an assertion accepted by one must be refused by all) and
    the audit log (one SQLite file, one chain: ``gateway.audit.format``); each reads the
    sources into its own in-memory store, as an on-disk store is one process's."""
    if workers == 1:
        return
    if not settings.open and not settings.redis_url:
        raise ConfigError(
            settings.file,
            "node.redis",
            f"--workers {workers} needs it: the workers share the replay cache there",
        )
    if settings.store_path is not None:
        raise ConfigError(
            settings.file,
            "node.store",
            f"--workers {workers}: an on-disk store is opened by one process; each worker keeps the "
            "sources in memory, so remove node.store (or serve with one worker)",
        )


def from_env() -> FastAPI:
    """The app of one worker of ``dsgo serve --workers N``: the node file in ``DSGO_CONFIG``,
    with the same ``DSGO_*`` overrides as the command that started the workers."""
    import logging

    from gateway.config import load_node_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return create_app(load_node_settings(os.environ["DSGO_CONFIG"]))


def _federation(
    settings: NodeSettings, node: Node, auth: Auth | None, clock: Callable[[], float]
) -> Federation | None:
    """The node's federated query engine; none for an open node (it has no identity)."""
    if auth is None:
        return None
    registry = auth.trust
    assert isinstance(registry, RegistryClient)

    async def local(docs: list[str]) -> dict[str, Any]:
        return await asyncio.to_thread(node.own_documents, docs)

    return Federation(
        settings.party_id,
        settings.base_iri,
        registry.tokens,
        registry.parties,
        local,
        node.vocab.prefixes,
        clock,
        registry_state=registry.state,
        local_failed=node.sources.failed_names,
        limits=settings.federation_limits,
    )


@describe(
    get=Operation("/sparql is not offered on a node whose data is a remote store", errors=(404,)),
    post=Operation("/sparql is not offered on a node whose data is a remote store", errors=(404,)),
)
async def _sparql_refused(request: Request) -> Response:
    """``/sparql`` on a node whose data is a remote store: not offered, and why."""
    reader(request)  # a caller without a token learns no more than elsewhere
    raise NotFound(SPARQL_NOT_OFFERED)


def _workbench(state: NodeState, auth: Auth, clock: Callable[[], float]) -> Workbench:
    settings = state.settings
    assert settings.workbench_accounts is not None
    sessions = Sessions(
        settings.workbench_accounts.with_suffix(".sessions.sqlite"),
        session_key(auth.identity.key, settings.party_id),
        settings.workbench_session_hours * 3600,
        clock,
    )
    return Workbench(
        settings,
        state.node,
        state.federation,
        sessions,
        settings.workbench_accounts,
        state.federation_budget,
        state.sparql_limits,
        clock,
    )


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
    node.audit = (
        AuditLog(settings.audit_path, on_failure=settings.audit_on_failure) if settings.audit_path else None
    )
    state = NodeState(
        settings=settings,
        node=node,
        auth=auth,
        audit=node.audit,
        federation=_federation(settings, node, auth, clock),
        federation_clients=frozenset({settings.party_id, *settings.federation_clients}),
        federation_budget=Budget(
            max_documents=settings.federation_max_documents,
            timeout=settings.federation_timeout,
            node_timeout=settings.federation_node_timeout,
            concurrency=settings.federation_concurrency,
            limits=settings.federation_limits,
        ),
        sparql_limits=(settings.sparql_timeout, settings.sparql_max_results),
        queries=None
        if node.remote is not None
        else QueryPool(
            node.access.store,
            base_iri=settings.base_iri,
            prefixes=node.vocab.prefixes,
            workers=settings.sparql_workers,
            party_queue=settings.sparql_party_queue,
            queue=settings.sparql_queue,
        ),
        clock=clock,
    )
    # change notifications: subscriptions, the outbox and its sender, this party's inbox
    state.notifier, state.inbox = make_notifications(settings, node, auth, client, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if node.audit is not None:
            node.audit.start()
        # a first start's load and labelling, in a process of its own: its heap goes with it
        await asyncio.to_thread(load_apart, node)
        if not (watch and _serves_stored(node)):  # else changed sources are re-read while serving
            await asyncio.to_thread(node.sources.refresh_all, False)  # nothing is served yet
        await asyncio.to_thread(node.access.sync_labels)
        state.started = True
        task = asyncio.create_task(_watch(node, settings.poll_interval)) if watch else None
        sender = asyncio.create_task(state.notifier.run()) if watch and state.notifier else None
        queries = state.queries
        try:
            # SIGINT/SIGTERM answer running queries at once, so the server stops at once
            with on_exit_signals(queries.abort if queries else lambda: None):
                yield
        finally:
            for running in (task, sender):
                if running is not None:
                    running.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await running
            for db in (state.notifier.outbox if state.notifier else None, state.inbox):
                if db is not None:
                    db.close()
            if queries is not None:
                await queries.close()
            node.close()
            if node.audit is not None:
                node.audit.close()
            if auth is not None:
                app.state.workbench.sessions.close()
            if auth is not None:
                await auth.replay.close()
                if isinstance(auth.trust, RegistryClient):
                    await auth.trust.aclose()
            if http is None:
                await client.aclose()

    app = _NodeApp(
        title=f"DSGO node {settings.name}",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        # FastAPI's OpenTelemetry hooks cost ~5 µs on every request: off unless wanted
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.dsgo = state
    problems.install(app, browser_redirect)
    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/capabilities", capabilities, methods=["GET"]),
        *([Route("/connect/token", token_endpoint(), methods=["POST"])] if auth is not None else []),
        Route("/", catalog, methods=["GET"]),
        Route(WELL_KNOWN, catalog, methods=["GET"]),
        Route("/collections/{cls:path}", collection, methods=["GET"]),
        # views of a remote store would need copying it: refused, and why
        Route("/sparql", sparql if node.remote is None else _sparql_refused, methods=["GET", "POST"]),
        Route("/resources", batch, methods=["POST"]),
        Route("/federation/query", federated_query, methods=["POST"]),
        Route("/policy/explain", explain, methods=["GET"]),
        Route("/delegation", delegation, methods=["POST"]),
        *(subscription_routes() if auth is not None else []),
        # the vocabulary terms the pages link to, served here (their own hosts never answer)
        Route("/vocab/", vocabulary, methods=["GET"], include_in_schema=False),
        Route("/vocab/{term:path}", vocabulary, methods=["GET"], include_in_schema=False),
    ]
    # the workbench of the node's own people (a node with an identity): pages, not API
    if auth is not None:
        app.state.workbench = bench = _workbench(state, auth, clock)
        routes += web_routes(bench)
    # every other path (FastAPI's /docs and /openapi.json are others too) is a resource in
    # the node's namespace; that route is tried first (the hot path)
    hot = _ResourceRoute([*routes, *app.router.routes])
    app.router.routes[:0] = [hot, *routes]
    install(app, secured=auth is not None, description=_DESCRIPTION)
    if settings.cors_origins:  # off unless the operator allows browser clients: no cost then
        app.front.append(Middleware(CORSMiddleware, **cors(settings.cors_origins)))
    # a read whose every decision is made is answered before FastAPI's layers
    app.front.append(Middleware(HotPath, state=state, reserved=hot.reserved))
    if node.remote is None:  # and a point look-up at /sparql (gateway.http.hot_sparql)
        app.front.append(Middleware(SparqlHotPath, state=state))
    return app


class _NodeApp(FastAPI):
    """FastAPI with ``front``: middleware in front of all of FastAPI's own layers (its
    error, telemetry and body-limit middleware, which every request would otherwise pass
    through, each wrapping ``send``), the first outermost.

    The hot paths sit there: what they answer needs none of those layers, and an error
    inside one passes the request on to the application, whose layers then answer it
    (``gateway.http.hot``). CORS sits in front of them all, so that every answer, a 500's
    too, carries its headers."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.front: list[Middleware] = []

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self.front):
            app = cls(app, *args, **kwargs)
        return app


_DESCRIPTION = (
    "A DSGO node: a party's building data as linked data at its own IRIs, each read decided by the "
    "node's policies. Get a token at POST /connect/token with an iSHARE client assertion."
)


def _serves_stored(node: Node) -> bool:
    """Does an on-disk store already hold a version of every source? Then the node serves
    those at once and re-reads what changed in the background (as it does later on)."""
    stored = node.store.sources() if node.remote is None and node.settings.store_path else {}
    return bool(node.settings.sources) and all(s.name in stored for s in node.settings.sources)


async def _watch(node: Node, interval: float) -> None:
    """Re-read changed policy files and sources until cancelled, off the event loop.

    A failed pass is logged and the next one comes as usual: the watcher never dies
    silently. A pass under way when the node stops is finished before the task ends, as
    its thread cannot be stopped: the store it writes closes after it, never under it."""
    while True:
        await asyncio.sleep(interval)
        work = asyncio.ensure_future(asyncio.to_thread(_refresh, node))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await work
            raise
        except Exception:
            log.exception("re-reading policy files and sources failed")


def _refresh(node: Node) -> None:
    node.access.refresh()
    node.sources.refresh_all()


class _ResourceRoute(Route):
    """The catch-all resource route, tried first so the hot path pays no regex per route
    before it: it declines the first path segments of every other route, so it takes
    exactly what a catch-all placed last would."""

    def __init__(self, others: list[BaseRoute]) -> None:
        super().__init__("/{path:path}", resource, methods=["GET"])
        paths = [getattr(r, "path", "") for r in others]
        self.reserved = frozenset(p.strip("/").split("/")[0] for p in paths if p)  # "/" too

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["path"][1:].partition("/")[0] in self.reserved:
            return Match.NONE, {}
        return super().matches(scope)
