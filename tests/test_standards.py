"""Standard clients work unmodified: what the issue found broken, each as a behaviour.

No request makes a 500 (IRIs no IRI can be, in paths and bodies); a hidden resource is
answered as a missing one; SPARQL 1.1 Protocol formats and the Service Description;
CORS when configured; one IRI per collection."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pyoxigraph as ox
import pytest

from gateway.config import load_node_settings
from gateway.node import Node
from tests.conftest import NS, serving, write_node
from tests.kit import FIRM, Pki, federation

pytestmark = pytest.mark.anyio

HIDE_TWO = """
rules:
  - id: all-but-two
    effect: permit
    to: {anyone: true}
    resources: {iris: ["https://data.test.example/id/building/1", "https://data.test.example/id/building/3"]}
    fields: all
"""


@contextlib.asynccontextmanager
async def node(tmp_path: Path, **extra: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(load_node_settings(write_node(tmp_path, **extra), {})) as (_, client):
        yield client


@pytest.fixture
async def firm(tmp_path: Path, pki: Pki) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        federation(tmp_path, pki, policies={FIRM: HIDE_TWO}) as fed,
        await fed.client_as(FIRM) as client,
    ):
        yield client


# -- no request makes a 500 ------------------------------------------------------------


async def test_path_with_space_is_404_not_500(tmp_path: Path) -> None:
    async with node(tmp_path) as client:
        answer = await client.get("/id/home/a%20b")
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "path", ["/id/home/%00", "/id/home/%0a", "/id/%7Bx%7D", "/id/home/%zz", "/id/%E0%A4%A"]
)
async def test_path_with_control_or_bad_escape_is_404_not_500(tmp_path: Path, path: str) -> None:
    async with node(tmp_path) as client:
        answer = await client.get(path)
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"


async def test_over_long_path_is_404_not_500(tmp_path: Path) -> None:
    async with node(tmp_path) as client:
        answer = await client.get("/id/" + "x" * 5000)
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"


@pytest.mark.parametrize("iri", [NS + "id/a b", NS + "id/<x>", NS + "id/%zz", NS + "id/\u0000"])
async def test_batch_iri_no_iri_can_be_is_400_not_500(tmp_path: Path, iri: str) -> None:
    async with node(tmp_path) as client:
        answer = await client.post("/resources", json={"resources": [{"iri": iri}]})
    assert answer.status_code == 400 and answer.json()["code"] == "bad_request"


async def test_federated_start_iri_with_space_is_400_not_500(tmp_path: Path, pki: Pki) -> None:
    async with federation(tmp_path, pki) as fed, await fed.client_as(FIRM) as client:
        body = {"query": "SELECT * WHERE { ?s ?p ?o }", "start": [NS + "id/a b"]}
        answer = await client.post("/federation/query", json=body)
    assert answer.status_code == 400 and answer.json()["code"] == "bad_request"


async def test_hidden_resource_is_answered_as_a_missing_one(firm: httpx.AsyncClient) -> None:
    hidden, missing = await firm.get("/id/building/2"), await firm.get("/id/building/99")
    assert (hidden.status_code, hidden.json()["code"]) == (missing.status_code, missing.json()["code"])
    assert hidden.status_code == 404
    assert hidden.json()["detail"].replace("2", "N") == missing.json()["detail"].replace("99", "N")


# -- SPARQL 1.1 Protocol and Service Description ----------------------------------------------


async def test_construct_answers_rdf_xml_as_sparqlwrapper_asks(tmp_path: Path) -> None:
    async with node(tmp_path) as client:
        answer = await client.get(
            "/sparql",
            params={"query": "CONSTRUCT WHERE { ?s a ?c }"},
            headers={"accept": "application/rdf+xml"},
        )
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/rdf+xml"
    triples = [q.triple for q in ox.parse(answer.content, ox.RdfFormat.RDF_XML)]
    assert (
        ox.Triple(ox.NamedNode(NS + "id/building/1"), ox.NamedNode(RDF_TYPE), ox.NamedNode(BOT + "Building"))
        in triples
    )


async def test_describe_answers_n_quads(tmp_path: Path) -> None:
    async with node(tmp_path) as client:
        answer = await client.get(
            "/sparql",
            params={"query": f"DESCRIBE <{NS}id/building/2>"},
            headers={"accept": "application/n-quads"},
        )
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/n-quads"
    assert "Kerkstraat 2" in answer.text


SD = "http://www.w3.org/ns/sparql-service-description#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
BOT = "https://w3id.org/bot#"


async def test_sparql_without_query_is_the_service_description(tmp_path: Path) -> None:
    async with node(tmp_path) as client:
        answer = await client.get("/sparql")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/turtle")
    graph = [q.triple for q in ox.parse(answer.content, ox.RdfFormat.TURTLE)]
    service = ox.NamedNode("http://node.test/sparql")
    assert ox.Triple(service, ox.NamedNode(RDF_TYPE), ox.NamedNode(SD + "Service")) in graph
    assert ox.Triple(service, ox.NamedNode(SD + "endpoint"), service) in graph
    assert (
        ox.Triple(service, ox.NamedNode(SD + "supportedLanguage"), ox.NamedNode(SD + "SPARQL11Query"))
        in graph
    )
    formats = {t.object for t in graph if t.predicate == ox.NamedNode(SD + "resultFormat")}
    assert ox.NamedNode("http://www.w3.org/ns/formats/RDF_XML") in formats
    assert any(t.predicate == ox.NamedNode(SD + "feature") for t in graph)
    assert any(t.object == ox.NamedNode(NS + ".well-known/void#dataset") for t in graph)


async def test_service_description_is_content_negotiated(tmp_path: Path) -> None:
    async with node(tmp_path) as client:
        answer = await client.get("/sparql", headers={"accept": "application/ld+json"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/ld+json")
    assert "Service" in answer.json().get("@type", "") or "sparql-service-description" in answer.text


async def test_no_cors_unless_the_operator_allows_origins(tmp_path: Path) -> None:
    async with node(tmp_path) as client:
        answer = await client.get("/id/building/1", headers={"origin": "https://yasgui.example"})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


async def test_cors_preflight_from_an_allowed_origin_allows_authorization(tmp_path: Path) -> None:
    async with node(tmp_path, cors_origins=["https://yasgui.example"]) as client:
        answer = await client.options(
            "/sparql",
            headers={
                "origin": "https://yasgui.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
            },
        )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://yasgui.example"
    assert "authorization" in answer.headers["access-control-allow-headers"].lower()


async def test_cors_refuses_an_origin_not_listed(tmp_path: Path) -> None:
    async with node(tmp_path, cors_origins=["https://yasgui.example"]) as client:
        answer = await client.get("/id/building/1", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in answer.headers


async def test_cors_star_allows_any_origin_on_an_open_node(tmp_path: Path) -> None:
    async with node(tmp_path, cors_origins=["*"]) as client:
        answer = await client.get("/id/building/1", headers={"origin": "https://any.example"})
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "etag" in answer.headers["access-control-expose-headers"].lower()


# -- one IRI per collection -------------------------------------------------------------------


async def test_collection_has_one_iri_whatever_spelling_was_asked(tmp_path: Path) -> None:
    ntriples = {"accept": "application/n-triples"}
    async with node(tmp_path) as client:
        full = await client.get("/collections/https%3A%2F%2Fw3id.org%2Fbot%23Building", headers=ntriples)
        short = await client.get("/collections/bot:Building", headers=ntriples)
    assert full.status_code == short.status_code == 200
    assert full.text == short.text and full.headers["etag"] == short.headers["etag"]
    assert f"<{NS}collections/bot:Building>" in short.text


async def test_cors_headers_are_on_an_internal_error_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CORS sits in front of the node's error handling: a browser client reads the 500
    (a problem with its stable code) instead of a bare CORS failure."""
    settings = load_node_settings(write_node(tmp_path, cors_origins=["https://yasgui.example"]), {})
    async with serving(settings) as (app, _):
        # the server's view: the 500 is sent, then the error goes on up to be logged
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://node.test") as client:
            origin = {"origin": "https://yasgui.example"}
            assert (await client.get("/id/building/1", headers=origin)).status_code == 200

            def broken(*args: object, **kwargs: object) -> None:
                raise RuntimeError("a bug")

            monkeypatch.setattr(Node, "cached", broken)  # the hot path's and the route's look-up
            monkeypatch.setattr(Node, "represent", broken)
            answer = await client.get("/id/building/1", headers=origin)
    assert answer.status_code == 500
    assert answer.json()["code"] == "internal_error"
    assert answer.headers["access-control-allow-origin"] == "https://yasgui.example"
