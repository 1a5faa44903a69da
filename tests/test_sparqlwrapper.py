"""SPARQLWrapper, with its default settings (GET, XML results, RDF/XML graphs), asks a
node on loopback SELECT, ASK, CONSTRUCT and DESCRIBE, and understands every answer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from SPARQLWrapper import SPARQLWrapper

from gateway.config import load_node_settings
from tests.conftest import NS, serving, write_node
from tests.loopback import Served, loopback

BOT = "https://w3id.org/bot#"
# SPARQLWrapper 2.0 parses graphs into rdflib's ConjunctiveGraph, which rdflib 7 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = load_node_settings(write_node(tmp_path_factory.mktemp("sparqlwrapper")), {})

    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[tuple[Any, dict[str, Any]]]:
        async with serving(settings) as (app, _):
            yield None, {"node": app}

    served: Served
    with loopback(make) as served:
        yield served.urls["node"] + "/sparql"


def test_sparqlwrapper_select_with_default_settings(endpoint: str) -> None:
    client = SPARQLWrapper(endpoint)
    client.setQuery(f"SELECT ?b WHERE {{ ?b a <{BOT}Building> }} ORDER BY ?b")
    document = client.query().convert()  # XML results, as a DOM
    uris = [node.firstChild.data for node in document.getElementsByTagName("uri")]
    assert uris == [NS + "id/building/1", NS + "id/building/2", NS + "id/building/3"]


def test_sparqlwrapper_ask_with_default_settings(endpoint: str) -> None:
    client = SPARQLWrapper(endpoint)
    client.setQuery(f"ASK {{ <{NS}id/building/1> a <{BOT}Building> }}")
    document = client.query().convert()
    assert document.getElementsByTagName("boolean")[0].firstChild.data == "true"


def test_sparqlwrapper_construct_with_default_settings(endpoint: str) -> None:
    client = SPARQLWrapper(endpoint)
    client.setQuery(f"CONSTRUCT WHERE {{ ?b a <{BOT}Building> }}")
    graph = client.query().convert()  # RDF/XML, parsed by rdflib
    assert len(graph) == 3


def test_sparqlwrapper_describe_with_default_settings(endpoint: str) -> None:
    client = SPARQLWrapper(endpoint)
    client.setQuery(f"DESCRIBE <{NS}id/building/2>")
    graph = client.query().convert()
    labels = {str(o) for p, o in graph.predicate_objects() if str(p).endswith("#label")}
    assert labels == {"Kerkstraat 2"}
