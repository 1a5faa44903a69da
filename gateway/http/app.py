"""``create_app(settings)``: one node as an ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import __version__
from gateway.config import NodeSettings
from gateway.http import problems
from gateway.http.catalog import WELL_KNOWN, catalog
from gateway.http.resources import collection, resource
from gateway.node import Node

__all__ = ["create_app"]


def create_app(settings: NodeSettings, *, watch: bool = True) -> FastAPI:
    """The node's app. Sources are read at start-up; with ``watch`` they are re-read
    when they change."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        node = Node(settings)
        app.state.node = node
        await asyncio.to_thread(node.sources.refresh_all)
        task = asyncio.create_task(node.sources.watch(settings.poll_interval)) if watch else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            node.close()

    app = FastAPI(
        title=f"DSGO node {settings.name}",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    problems.install(app)

    @app.get("/health", summary="Sources and their state")
    async def health(request: Request) -> Response:
        node: Node = request.app.state.node
        sources = node.sources.health()
        ok = all(s["status"] == "ok" for s in sources.values())
        body = {
            "status": "ok" if ok else "degraded",
            "party_id": settings.party_id,
            "namespace": settings.base_iri,
            "sources": sources,
        }
        return Response(orjson.dumps(body), media_type="application/json")

    for path in ("/", WELL_KNOWN):
        app.router.routes.append(Route(path, catalog, methods=["GET"], include_in_schema=False))
    app.router.routes.append(Route("/collections/{cls:path}", collection, methods=["GET"]))
    # last: every other path is a resource in the node's namespace
    app.router.routes.append(Route("/{path:path}", resource, methods=["GET"]))
    return app
