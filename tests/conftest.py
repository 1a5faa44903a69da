"""Shared fixtures: a node in a temporary folder, run in process over ASGI."""

from __future__ import annotations

import contextlib
import random
import socket
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi import FastAPI

from gateway.config import NodeSettings, load_node_settings
from gateway.http.app import create_app

if TYPE_CHECKING:
    from tests.kit import Pki

NS = "https://data.test.example/"

BUILDING_TTL = """\
@prefix bot:  <https://w3id.org/bot#> .
@prefix dsgo: <https://vocab.dsgo.example/def#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd:  <http://www.w3.org/2001/XMLSchema#> .
@prefix qudt: <http://qudt.org/schema/qudt/> .
@prefix unit: <http://qudt.org/vocab/unit/> .

<id/building/1> a bot:Building ;
    rdfs:label "Kerkstraat 1"@nl, "Church street 1"@en ;
    dsgo:energyLabel "C" ;
    dsgo:buildingYear "1971"^^xsd:gYear ;
    dsgo:rcRoof 2.5 ;
    dsgo:bagPand <https://bag.basisregistraties.overheid.nl/id/pand/0363100012345678> ;
    bot:hasStorey <id/building/1/storey/0> ;
    dsgo:floorArea [ qudt:numericValue 81.5 ; qudt:unit unit:M2 ; rdfs:comment [ rdfs:label "nested" ] ] .
<id/building/1/storey/0> a bot:Storey .
<id/building/2> a bot:Building ; rdfs:label "Kerkstraat 2" .
<id/building/3> a bot:Building ; rdfs:label "Kerkstraat 3" .
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


#: the ports free_port handed out in this run: a port released after the check is free
#: again for the kernel, and two calls before the servers bind could otherwise get one port
_GIVEN: set[int] = set()


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range (32768-60999 here, so no
    outgoing connection takes it before the test's server binds it), and not one this run
    handed out before."""
    for _ in range(1000):
        port = random.randrange(20_000, 32_000)
        if port in _GIVEN:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        _GIVEN.add(port)
        return port
    raise RuntimeError("no free loopback port between 20000 and 32000")


def write_node(folder: Path, extra: str = "", sources: str | None = None, **node: object) -> Path:
    """Write a node TOML (and a data file) into ``folder``; returns the TOML path."""
    (folder / "data").mkdir(exist_ok=True)
    if sources is None:
        (folder / "data" / "buildings.ttl").write_text(BUILDING_TTL)
        sources = '[[source]]\nname = "buildings"\ntype = "rdf"\npath = "data/buildings.ttl"\n'
    values = {
        "party_id": "EU.EORI.NL000000001",
        "name": "Test Bouw",
        "base_iri": NS,
        "port": free_port(),
        "poll_interval": 0.05,
        "open": True,
        **node,
    }
    lines = "\n".join(f"{k} = {_toml(v)}" for k, v in values.items())
    path = folder / "node.toml"
    path.write_text(f"[node]\n{lines}\n\n{sources}\n{textwrap.dedent(extra)}")
    return path


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


@pytest.fixture
def node_toml(tmp_path: Path) -> Path:
    return write_node(tmp_path)


@contextlib.asynccontextmanager
async def serving(
    settings: NodeSettings, watch: bool = False, clock: Callable[[], float] = time.time
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Run a node's app in process (with its lifespan) and a client for it."""
    app = create_app(settings, watch=watch, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node.test") as client:
            yield app, client


@pytest.fixture
def settings(node_toml: Path) -> NodeSettings:
    return load_node_settings(node_toml, {})


Client = Callable[[], contextlib.AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A development PKI shared by the identity tests (keys are slow to make)."""
    from tests.kit import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))
