"""A node whose data is a SPARQL store, against a real Virtuoso: nothing is copied.

The firm's data and policy of ``test_policy_paths`` go into a Virtuoso graph; a second
app for the firm reads it live (``type = "sparql"``) beside the firm's embedded node,
and every read path that node offers must decide exactly as the embedded one does.
Then what only a remote store has: no ``/sparql``, answers at most ``cache_ttl`` old, a
store that goes away (a clear 502 naming it, health says so, back when it is), and IRIs
that would break out of a query.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyoxigraph as ox
import pytest
from fastapi import FastAPI

from gateway import access
from gateway.config import load_node_settings
from gateway.errors import ConfigError, UpstreamError
from gateway.http.app import create_app
from gateway.store.local import Store
from gateway.store.remote import SPARQL_NOT_OFFERED, RemoteStore
from tests.conftest import free_port, serving, write_node
from tests.kit import CORP, FIRM, MUNI, Clock, Federation, Pki, federation
from tests.servers import Relay, Virtuoso, relayed, virtuoso_server
from tests.test_policy_paths import B1, B2, DATA, EXPECTED, NS, POLICY, S1, fields_of

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FILE_SOURCE = '[[source]]\nname = "buildings"\ntype = "rdf"\npath = "data/buildings.ttl"\n'
NT = "application/n-triples"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
MISSING = NS + "id/building/999"


@pytest.fixture(scope="module")
def virtuoso() -> Iterator[Virtuoso]:
    """One Virtuoso for the module (it takes 2-3 s to start); each test its own graph."""
    with virtuoso_server() as server:
        yield server


def load(virtuoso: Virtuoso, turtle: str) -> str:
    """Put ``turtle`` (IRIs relative to ``NS``) into a fresh named graph; its IRI."""
    graph = f"urn:dsgo:test:{uuid.uuid4().hex}"
    triples = ox.serialize(ox.parse(turtle, ox.RdfFormat.TURTLE, base_iri=NS), format=ox.RdfFormat.N_TRIPLES)
    assert triples is not None
    virtuoso.update(f"INSERT {{ GRAPH <{graph}> {{\n{triples.decode()}}} }} WHERE {{}}")
    return graph


def sparql_source(endpoint: str, graph: str | None = None, **options: float) -> str:
    lines = ["[[source]]", 'name = "warehouse"', 'type = "sparql"', f'endpoint = "{endpoint}"']
    lines += [f'graph = "{graph}"'] if graph else []
    lines += [f"{key} = {value}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


def unlabelled(ntriples: str) -> list[str]:
    """The lines of an N-Triples answer, sorted, blank node labels made equal."""
    return sorted(re.sub(r"_:\w+", "_:b", line) for line in ntriples.splitlines())


@dataclass
class Pair:
    """The firm's embedded node (in ``fed``) and its twin on the Virtuoso graph."""

    fed: Federation
    remote: FastAPI
    graph: str

    @contextlib.asynccontextmanager
    async def clients(self, party: str) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
        """Clients of the embedded and the remote node, both with ``party``'s token."""
        token = await self.fed.nodes[party].state.dsgo.auth.trust.tokens.token(FIRM, "http://p001.test")
        headers = {"authorization": f"Bearer {token}"}
        remote = httpx.ASGITransport(app=self.remote)
        async with (
            self.fed.client(FIRM) as embedded,
            httpx.AsyncClient(transport=remote, base_url="http://p001.test", headers=headers) as twin,
        ):
            embedded.headers.update(headers)
            yield embedded, twin


@pytest.fixture
async def pair(tmp_path: Path, pki: Pki, virtuoso: Virtuoso) -> AsyncIterator[Pair]:
    graph = load(virtuoso, DATA)
    async with federation(
        tmp_path, pki, nodes=(FIRM, CORP, MUNI), policies={FIRM: POLICY}, data={FIRM: DATA}
    ) as fed:
        embedded = (tmp_path / "node-001" / "node.toml").read_text()
        policies = tmp_path / "node-001" / "policies"
        text = embedded.replace(FILE_SOURCE, sparql_source(virtuoso.endpoint, graph))
        text = text.replace('[policies]\ndir = "policies"', f'[policies]\ndir = "{policies}"')
        assert "sparql" in text and str(policies) in text
        folder = tmp_path / "remote-001"
        folder.mkdir()
        (folder / "node.toml").write_text(text)
        async with httpx.AsyncClient(transport=fed.router) as http:
            app = create_app(
                load_node_settings(folder / "node.toml", {}), watch=False, http=http, clock=fed.clock
            )
            async with app.router.lifespan_context(app):
                yield Pair(fed, app, graph)


# -- the same decisions as the embedded store ---------------------------------------------


@pytest.mark.parametrize("party", [MUNI, CORP])
@pytest.mark.parametrize("resource", [B1, B2, S1, MISSING])
async def test_resource_views_equal_the_embedded_stores(pair: Pair, party: str, resource: str) -> None:
    async with pair.clients(party) as (embedded, remote):
        expected = await embedded.get(resource.removeprefix(NS[:-1]), headers={"accept": NT})
        answer = await remote.get(resource.removeprefix(NS[:-1]), headers={"accept": NT})
    if resource not in EXPECTED[party]:
        assert (expected.status_code, answer.status_code) == (404, 404)
        assert answer.json() == expected.json()
        return
    assert (expected.status_code, answer.status_code) == (200, 200)
    assert fields_of(answer.content, ox.RdfFormat.N_TRIPLES, resource) == EXPECTED[party][resource]
    assert unlabelled(answer.text) == unlabelled(expected.text)
    assert answer.headers.get("dsgo-withheld-fields") == expected.headers.get("dsgo-withheld-fields")


@pytest.mark.parametrize("accept", ["text/turtle", "application/ld+json", "text/html", NT])
async def test_every_format_of_a_remote_resource_is_byte_for_byte_the_embedded_one(
    pair: Pair, accept: str
) -> None:
    async with pair.clients(MUNI) as (embedded, remote):
        expected = await embedded.get("/id/building/1", headers={"accept": accept})
        answer = await remote.get("/id/building/1", headers={"accept": accept})
    assert answer.status_code == expected.status_code == 200
    assert answer.content == expected.content
    assert answer.headers["etag"] == expected.headers["etag"]


@pytest.mark.parametrize("party", [MUNI, CORP])
@pytest.mark.parametrize("cls", ["bot:Building", "bot:Storey"])
async def test_collections_equal_the_embedded_stores(pair: Pair, party: str, cls: str) -> None:
    async with pair.clients(party) as (embedded, remote):
        expected = await embedded.get(f"/collections/{cls}", headers={"accept": NT})
        answer = await remote.get(f"/collections/{cls}", headers={"accept": NT})
    assert answer.status_code == expected.status_code == 200
    assert answer.text == expected.text


async def test_batch_reads_equal_the_embedded_stores(pair: Pair) -> None:
    body = {"resources": [{"iri": B1}, {"iri": B2}, {"iri": S1}, {"iri": MISSING}]}
    async with pair.clients(MUNI) as (embedded, remote):
        expected = await embedded.post("/resources", json=body)
        answer = await remote.post("/resources", json=body)
    assert answer.status_code == expected.status_code == 200
    got, wanted = answer.json()["resources"], expected.json()["resources"]
    assert [r["status"] for r in got] == [r["status"] for r in wanted] == [200, 404, 200, 404]
    assert [r.get("withheld") for r in got] == [r.get("withheld") for r in wanted] == [2, None, 1, None]
    # the batch answer is in canonical order; blank node labels differ between the stores
    assert [unlabelled(r.get("ntriples", "")) for r in got] == [
        unlabelled(r.get("ntriples", "")) for r in wanted
    ]


def class_counts(turtle: str) -> dict[str, int]:
    """class -> void:entities of a self-description in Turtle."""
    graph = list(ox.parse(turtle, ox.RdfFormat.TURTLE))
    value = {(q.subject, q.predicate.value): q.object.value for q in graph}
    void = "http://rdfs.org/ns/void#"
    parts = [q.object for q in graph if q.predicate.value == void + "classPartition"]
    return {value[p, void + "class"]: int(value[p, void + "entities"]) for p in parts}


@pytest.mark.parametrize(
    ("party", "counts"),
    [
        (MUNI, {"https://w3id.org/bot#Building": 1, "https://w3id.org/bot#Storey": 1}),
        (CORP, {"https://w3id.org/bot#Building": 1}),
    ],
)
async def test_class_counts_of_the_description_are_the_callers_as_embedded(
    pair: Pair, party: str, counts: dict[str, int]
) -> None:
    async with pair.clients(party) as (embedded, remote):
        expected = await embedded.get("/", headers={"accept": "text/turtle"})
        answer = await remote.get("/", headers={"accept": "text/turtle"})
    assert answer.status_code == expected.status_code == 200
    assert class_counts(answer.text) == class_counts(expected.text) == counts
    assert "void#triples" not in answer.text and "void:triples" not in answer.text


async def test_classes_beyond_the_count_budget_are_left_out_with_a_note(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(access, "REMOTE_COUNT_BUDGET", 2)  # the graph has 3 typed resources
    async with pair.clients(MUNI) as (_, remote):
        answer = await remote.get("/", headers={"accept": "text/turtle"})
    comments = [
        q.object.value
        for q in ox.parse(answer.content, ox.RdfFormat.TURTLE)
        if q.predicate.value == "http://www.w3.org/2000/01/rdf-schema#comment"
    ]
    assert answer.status_code == 200
    assert class_counts(answer.text) == {}
    assert comments == [
        "Classes are not listed: this node reads a remote store holding more than 2 resources, "
        "too many to decide for you here; ask /collections/{class} for the resources of a class."
    ]


async def test_a_caller_who_may_see_everything_gets_the_stores_own_counts(
    tmp_path: Path, virtuoso: Virtuoso
) -> None:
    async with open_node(tmp_path, sparql_source(virtuoso.endpoint, load(virtuoso, DATA))) as (_, client):
        answer = await client.get("/", headers={"accept": "text/turtle"})
    assert answer.status_code == 200
    assert class_counts(answer.text) == {"https://w3id.org/bot#Building": 2, "https://w3id.org/bot#Storey": 1}


# -- what a remote store cannot offer -----------------------------------------------------


async def test_sparql_is_refused_with_the_reason(pair: Pair) -> None:
    async with pair.clients(MUNI) as (_, remote):
        answer = await remote.get("/sparql", params={"query": "SELECT * WHERE { ?s ?p ?o }"})
        posted = await remote.post(
            "/sparql", content="ASK {}", headers={"content-type": "application/sparql-query"}
        )
    assert answer.status_code == posted.status_code == 404
    assert answer.json() == {
        "type": "urn:dsgo:problem:not_found",
        "title": "Not found",
        "status": 404,
        "detail": SPARQL_NOT_OFFERED,
        "code": "not_found",
    }


async def test_capabilities_say_sparql_is_not_offered_and_why(pair: Pair) -> None:
    async with pair.clients(MUNI) as (embedded, remote):
        expected = (await embedded.get("/capabilities")).json()["capabilities_token"]
        answer = (await remote.get("/capabilities")).json()["capabilities_token"]

    def restricted(token: str) -> dict[str, dict[str, object]]:
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        features = claims["capabilities_info"]["supported_versions"][0]["supported_features"][0]
        return {f["feature"]: f for f in features["restricted"]}

    sparql = restricted(answer)["sparql"]
    assert sparql["offered"] is False and sparql["reason"] == SPARQL_NOT_OFFERED
    assert sparql["url"].endswith("/sparql") and sparql["token_endpoint"].endswith("/connect/token")
    assert "offered" not in restricted(expected)["sparql"]
    assert restricted(answer).keys() == restricted(expected).keys()


# -- freshness ----------------------------------------------------------------------------


def open_node(
    tmp_path: Path, source: str, clock: Callable[[], float] = time.time
) -> contextlib.AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]:
    """An open node (no tokens, no policy) on ``source``, in process."""
    return serving(load_node_settings(write_node(tmp_path, sources=source), {}), clock=clock)


def relabel(virtuoso: Virtuoso, graph: str, old: str, new: str) -> None:
    virtuoso.update(
        f'WITH <{graph}> DELETE {{ ?s <{RDFS_LABEL}> "{old}" }} INSERT {{ ?s <{RDFS_LABEL}> "{new}" }} '
        f'WHERE {{ ?s <{RDFS_LABEL}> "{old}" }}'
    )


async def test_a_change_in_the_store_shows_once_cache_ttl_has_passed(
    tmp_path: Path, virtuoso: Virtuoso
) -> None:
    graph = load(virtuoso, '<id/building/7> <http://www.w3.org/2000/01/rdf-schema#label> "before" .')
    clock = Clock()
    source = sparql_source(virtuoso.endpoint, graph, cache_ttl=60)
    async with open_node(tmp_path, source, clock) as (_, client):
        before = await client.get("/id/building/7", headers={"accept": NT})
        relabel(virtuoso, graph, "before", "after")
        still = await client.get("/id/building/7", headers={"accept": NT})
        clock.now += 60
        after = await client.get("/id/building/7", headers={"accept": NT})
    assert '"before"' in before.text and still.content == before.content
    assert '"after"' in after.text and '"before"' not in after.text


async def test_answers_are_reused_within_cache_ttl(tmp_path: Path, virtuoso: Virtuoso) -> None:
    graph = load(virtuoso, '<id/building/7> <http://www.w3.org/2000/01/rdf-schema#label> "before" .')
    async with open_node(tmp_path, sparql_source(virtuoso.endpoint, graph, cache_ttl=3600)) as (_, client):
        before = await client.get("/id/building/7", headers={"accept": NT})
        relabel(virtuoso, graph, "before", "after")
        again = await client.get("/id/building/7", headers={"accept": NT})
    assert again.status_code == 200 and again.content == before.content


async def test_with_cache_ttl_zero_a_change_shows_at_once(tmp_path: Path, virtuoso: Virtuoso) -> None:
    graph = load(virtuoso, '<id/building/7> <http://www.w3.org/2000/01/rdf-schema#label> "before" .')
    async with open_node(tmp_path, sparql_source(virtuoso.endpoint, graph, cache_ttl=0)) as (_, client):
        before = await client.get("/id/building/7", headers={"accept": NT})
        relabel(virtuoso, graph, "before", "after")
        after = await client.get("/id/building/7", headers={"accept": NT})
    assert '"before"' in before.text and '"after"' in after.text


# -- a store that is not there --------------------------------------------------------------


async def test_an_unreachable_store_is_a_502_naming_it(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/sparql"
    async with open_node(tmp_path, sparql_source(endpoint)) as (_, client):
        answer = await client.get("/id/building/1")
        collection = await client.get("/collections/bot:Building")
    body = answer.json()
    assert answer.status_code == collection.status_code == 502
    assert answer.headers["content-type"] == "application/problem+json"
    assert (body["code"], body["title"], body["status"]) == ("upstream_error", "Bad gateway", 502)
    assert body["detail"].startswith(f"the node's SPARQL store {endpoint} cannot be reached (")
    assert body["detail"].endswith("; its data cannot be read until it answers")
    assert collection.json()["detail"] == body["detail"]


async def test_health_shows_an_unreachable_store_failed_with_the_reason(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/sparql"
    async with open_node(tmp_path, sparql_source(endpoint)) as (_, client):
        health = (await client.get("/health")).json()
    source = health["sources"]["warehouse"]
    assert health["status"] == "failing"
    assert (source["type"], source["endpoint"], source["status"], source["state"]) == (
        "sparql",
        endpoint,
        "failing",
        "failed",
    )
    assert source["error"]["code"] == "upstream_error"
    assert source["error"]["detail"].startswith(f"the node's SPARQL store {endpoint} cannot be reached (")


@pytest.fixture
def relay(virtuoso: Virtuoso) -> Iterator[Relay]:
    with relayed(virtuoso.endpoint) as relay:
        yield relay


async def test_a_store_that_comes_back_serves_as_before(
    tmp_path: Path, virtuoso: Virtuoso, relay: Relay
) -> None:
    graph = load(virtuoso, DATA)
    endpoint = f"http://127.0.0.1:{relay.port}/sparql"
    async with open_node(tmp_path, sparql_source(endpoint, graph, cache_ttl=0)) as (app, client):
        before = await client.get("/id/building/2")
        relay.down()
        gone = await client.get("/id/building/2")
        failed = (await client.get("/health")).json()["sources"]["warehouse"]["state"]
        relay.up()
        back = await client.get("/id/building/2")
        await asyncio.to_thread(app.state.dsgo.node.sources.refresh_all)
        health = (await client.get("/health")).json()
    assert (before.status_code, gone.status_code, back.status_code) == (200, 502, 200)
    assert failed == "failed"
    assert back.content == before.content and back.headers["etag"] == before.headers["etag"]
    assert health["status"] == "ready" and "error" not in health["sources"]["warehouse"]


async def test_a_graph_without_data_shows_as_empty(tmp_path: Path, virtuoso: Virtuoso) -> None:
    async with open_node(tmp_path, sparql_source(virtuoso.endpoint, "urn:dsgo:test:nothing-here")) as (
        _,
        client,
    ):
        health = (await client.get("/health")).json()
    assert health["status"] == "degraded"
    assert health["sources"]["warehouse"]["state"] == "empty"


async def test_an_answer_the_store_cut_short_is_an_error_not_a_smaller_view() -> None:
    with virtuoso_server({"SPARQL": {"ResultSetMaxRows": "5"}}) as small:
        graph = load(small, "<id/building/8> <https://w3id.org/props#p> 1, 2, 3, 4, 5, 6, 7, 8 .")
        store = RemoteStore(small.endpoint, graph)
        try:
            with pytest.raises(UpstreamError) as err:
                store.describe(NS + "id/building/8")
        finally:
            store.close()
    assert err.value.status == 502
    assert err.value.detail == (
        f"the node's SPARQL store {small.endpoint} cut its answer at 5 rows; raise its result limit "
        "(Virtuoso: ResultSetMaxRows); its data cannot be read until it answers"
    )


# -- reading Virtuoso right -------------------------------------------------------------------


NESTED = """
@prefix p: <https://w3id.org/props#> .
<id/building/9> p:a [ p:b [ p:c [ p:d [ p:e [ p:f "six levels down" ] ] ] ] ] ;
    p:loop _:x ; p:flag true ; p:year "1999"^^<http://www.w3.org/2001/XMLSchema#gYear> ;
    p:name "Négen \\"9\\""@nl-NL .
_:x p:next _:y . _:y p:next _:x .
<id/building/10> p:a [ p:b "elsewhere" ] .
"""


@pytest.fixture
def nested(virtuoso: Virtuoso) -> Iterator[tuple[RemoteStore, Store]]:
    remote = RemoteStore(virtuoso.endpoint, load(virtuoso, NESTED))
    local = Store()
    local.replace_source("nested", list(ox.parse(NESTED, ox.RdfFormat.TURTLE, base_iri=NS)), "f")
    yield remote, local
    remote.close()
    local.close()


def canonical(triples: list[ox.Triple]) -> list[str]:
    """N-Triples of ``triples``, sorted, blank nodes relabelled canonically (RDFC-1.0)."""
    dataset = ox.Dataset(ox.Quad(t.subject, t.predicate, t.object) for t in triples)
    dataset.canonicalize(ox.CanonicalizationAlgorithm.UNSTABLE)
    return sorted(str(q.triple) for q in dataset)


def test_describe_follows_blank_nodes_at_any_depth_and_through_cycles(
    nested: tuple[RemoteStore, Store],
) -> None:
    remote, local = nested
    described = remote.describe(NS + "id/building/9")
    assert len(described) == 12
    assert canonical(described) == canonical(local.describe(NS + "id/building/9"))


def test_literals_come_back_as_written_whatever_virtuosos_dialect(nested: tuple[RemoteStore, Store]) -> None:
    remote, _ = nested
    subject, props = NS + "id/building/9", "https://w3id.org/props#"
    assert remote.objects(subject, props + "flag") == [
        ox.Literal("true", datatype=ox.NamedNode(XSD + "boolean"))
    ]
    assert remote.objects(subject, props + "year") == [
        ox.Literal("1999", datatype=ox.NamedNode(XSD + "gYear"))
    ]
    assert remote.objects(subject, props + "name") == [ox.Literal('Négen "9"', language="nl-nl")]


# -- IRIs that would break out of a query -----------------------------------------------------

ESCAPES = [
    "/id/building/1%3E%20%3Fp0%20%3Fo0%20%7D%20UNION%20%7B%20%3Fs%20%3Fp0%20%3Fo0",
    "/id/building/1%3E%20%3Fp0%20%3Fo0%20.%20%3Fs%20%3Fp%20%3Fo%20%7D%20%23",
    "/id/building/2%22%29%20%7C%7C%20true%20%7C%7C%20%28%22",
    "/id/building/1%5C%3E%20%3Fp0%20%3Fo0%20%7D",
    "/id/%7B%7D%7C%5E%60",
]


@pytest.mark.parametrize("path", ESCAPES)
async def test_iris_that_would_break_out_of_a_query_name_nothing(pair: Pair, path: str) -> None:
    async with pair.clients(MUNI) as (_, remote):
        answer = await remote.get(path, headers={"accept": NT})
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"
    assert "Kerkstraat" not in answer.text and "Dorpsstraat" not in answer.text


async def test_a_class_iri_that_would_break_out_of_a_query_has_no_members(
    tmp_path: Path, virtuoso: Virtuoso
) -> None:
    cls = "https%3A%2F%2Fw3id.org%2Fbot%23Building%3E%20.%20%3Fs%20%3Fp%20%3Fo"
    async with open_node(tmp_path, sparql_source(virtuoso.endpoint, load(virtuoso, DATA))) as (_, client):
        answer = await client.get(f"/collections/{cls}", headers={"accept": NT})
    assert answer.status_code == 404  # not an IRI: an unknown class, never a query
    assert answer.headers["content-type"] == "application/problem+json"
    assert "unknown class" in answer.json()["detail"]


def test_an_iri_that_is_not_one_never_reaches_the_store() -> None:
    store = RemoteStore(f"http://127.0.0.1:{free_port()}/sparql")  # nothing listens: a query would fail
    try:
        assert store.describe(NS + "id/1> ?p ?o } #") == []
        assert store.objects(NS + "id/1", "https://x.example/p> ?o }") == []
        assert store.subjects("https://x.example/p", 'https://x.example/"o') == []
        assert store.members("https://x.example/C{}", NS) == []
    finally:
        store.close()
    assert store.failure is None


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sources", "key", "expected"),
    [
        (
            '[[source]]\nname = "w"\ntype = "sparql"\n',
            "source[0].endpoint",
            "missing; expected the store's SPARQL endpoint",
        ),
        (sparql_source("http://127.0.0.1:1/sparql") + 'path = "x.ttl"\n', "source[0].path", "unknown key"),
        (
            sparql_source("http://127.0.0.1:1/sparql", "not an iri"),
            "source[0].graph",
            "absolute IRI of the named graph",
        ),
        (sparql_source("ftp://127.0.0.1/sparql"), "source[0].endpoint", "an http(s) URL"),
        (
            sparql_source("http://127.0.0.1:1/sparql", cache_ttl=-1),
            "source[0].cache_ttl",
            "seconds an answer may be reused",
        ),
        (
            FILE_SOURCE + "\n" + sparql_source("http://127.0.0.1:1/sparql"),
            "source[0].type",
            "reads only that store",
        ),
        (
            sparql_source("http://127.0.0.1:1/sparql") + "\n" + FILE_SOURCE,
            "source[1].type",
            "reads only that store",
        ),
        (
            sparql_source("http://127.0.0.1:1/sparql")
            + sparql_source("http://127.0.0.1:2/sparql").replace("warehouse", "second"),
            "source[1].type",
            "reads only that store",
        ),
    ],
)
def test_a_wrong_sparql_source_names_the_key(tmp_path: Path, sources: str, key: str, expected: str) -> None:
    path = write_node(tmp_path, sources=sources)
    with pytest.raises(ConfigError) as err:
        load_node_settings(path, {})
    assert err.value.key == key
    assert expected in err.value.expected


BAD_PATHS = [
    "/id/home/a%20b",
    "/id/home/%00",
    "/id/home/%0a",
    "/id/%7Bx%7D",
    "/id/home/%zz",
    "/id/" + "x" * 5000,
]


@pytest.mark.parametrize("path", BAD_PATHS)
async def test_path_no_iri_can_hold_is_404_not_500_on_both_stores(pair: Pair, path: str) -> None:
    async with pair.clients(MUNI) as (embedded, remote):
        answers = [await embedded.get(path), await remote.get(path)]
    assert [a.status_code for a in answers] == [404, 404]
    assert [a.json()["code"] for a in answers] == ["not_found", "not_found"]
