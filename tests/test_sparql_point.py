"""Point look-ups answered in the node (``gateway.sparql.point``): exactly the shape it
recognises, the same bytes a worker would send, the caller's view only, and a worker
whenever the labels may be moving or the answer is large."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pyoxigraph as ox
import pytest

from gateway.sparql import point
from gateway.sparql.worker import Request
from gateway.store.local import Store
from tests.kit import CORP, FIRM, MUNI, Federation, Pki, federation
from tests.test_policy_paths import B1, B2, DATA, EXPECTED, POLICY

NS = "https://data.test.example/"


@pytest.mark.parametrize(
    ("query", "recognised"),
    [
        (f"SELECT ?p ?o WHERE {{ <{B1}> ?p ?o }}", True),
        (f"select * {{ <{B1}> ?p ?o . }}", True),
        (f"SELECT ?o WHERE {{ <{B1}> <{NS}p> ?o }}", True),
        (f"  SELECT $p $o\nWHERE{{<{B1}> $p $o}}\n", True),
        ("SELECT ?s WHERE { ?s ?p ?o }", False),  # no constant subject: could be everything
        (f"SELECT ?p ?o WHERE {{ <{B1}> ?p ?o . ?o ?q ?r }}", False),
        (f"SELECT ?p ?o WHERE {{ <{B1}> ?p ?o }} LIMIT 1", False),
        (f"SELECT (COUNT(*) AS ?n) WHERE {{ <{B1}> ?p ?o }}", False),
        (f"ASK {{ <{B1}> ?p ?o }}", False),
        (f"SELECT ?p ?o FROM <urn:dsgo:meta> WHERE {{ <{B1}> ?p ?o }}", False),
        (f"SELECT ?p ?o WHERE {{ GRAPH ?g {{ <{B1}> ?p ?o }} }}", False),
        (f"SELECT ?p ?o WHERE {{ <{B1}> ?p ?o }} # note", False),
        (f"PREFIX x: <{NS}> SELECT ?p ?o WHERE {{ <{B1}> ?p ?o }}", False),
        (f'SELECT ?p WHERE {{ <{B1}> ?p "x" }}', False),
        ("SELECT ?p ?o WHERE { <a b> ?p ?o }", False),
    ],
)
def test_point_shape_is_one_pattern_with_a_constant_subject_and_nothing_else(
    query: str, recognised: bool
) -> None:
    assert point.is_point(query) is recognised


def _store_with(triples: int) -> tuple[Store, str]:
    """A store with one source whose subject has ``triples`` triples; its graph's name."""
    store = Store()
    subject = ox.NamedNode(B1)
    store.replace_source(
        "s", (ox.Triple(subject, ox.NamedNode(f"{NS}p{i}"), ox.Literal(str(i))) for i in range(triples)), "f"
    )
    return store, store.sources()["s"].graph.value


def _request(graph: str) -> Request:
    return Request("snap", (graph,), f"SELECT ?p ?o WHERE {{ <{B1}> ?p ?o }}", None, 10_000, NS)


def test_point_lookup_is_answered_here_in_canonical_order() -> None:
    store, graph = _store_with(12)
    answer = point.answer_here(store, _request(graph), store.labels(), {})
    assert answer is not None
    head, body = answer
    values = [b["p"]["value"] for b in orjson.loads(body)["results"]["bindings"]]
    assert head == {"status": "ok", "media": "application/sparql-results+json"}
    assert values == sorted(values, key=lambda iri: f"<{iri}>") and len(values) == 12  # as str(term)


def test_point_lookup_with_more_rows_than_answered_here_goes_to_a_worker() -> None:
    store, graph = _store_with(point.ROWS + 1)
    assert point.answer_here(store, _request(graph), store.labels(), {}) is None


def test_point_lookup_over_labels_that_moved_on_goes_to_a_worker() -> None:
    store, graph = _store_with(3)
    earlier = dataclasses.replace(store.labels())  # the labels a snapshot was made with, since replaced
    assert point.answer_here(store, _request(graph), earlier, {}) is None


def test_point_lookup_while_a_writer_is_at_work_goes_to_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    store, graph = _store_with(3)
    monkeypatch.setattr(store, "writing", lambda: True)
    assert point.answer_here(store, _request(graph), store.labels(), {}) is None


@pytest.fixture
async def fed(tmp_path: Path, pki: Pki) -> AsyncIterator[Federation]:
    async with federation(
        tmp_path, pki, nodes=(FIRM, CORP, MUNI), policies={FIRM: POLICY}, data={FIRM: DATA}
    ) as f:
        yield f


async def _select(client: httpx.AsyncClient, query: str) -> httpx.Response:
    return await client.get("/sparql", params={"query": query}, headers={"accept": "application/json"})


@pytest.mark.anyio
@pytest.mark.parametrize("party", [MUNI, CORP])
async def test_point_lookup_answers_the_bytes_a_worker_sends_for_the_same_question(
    fed: Federation, party: str
) -> None:
    async with await fed.client_as(party) as client:
        here = await _select(client, f"SELECT ?p ?o WHERE {{ <{B1}> ?p ?o }}")
        # the same question in a shape answered by a worker only
        worker = await _select(client, f"SELECT ?p ?o WHERE {{ <{B1}> ?p ?o FILTER(true) }}")
    assert here.status_code == 200
    assert (here.content, here.headers["content-type"]) == (worker.content, worker.headers["content-type"])
    assert {b["p"]["value"] for b in here.json()["results"]["bindings"]} == EXPECTED[party][B1]


@pytest.mark.anyio
async def test_point_lookup_of_a_resource_outside_the_view_finds_nothing(fed: Federation) -> None:
    async with await fed.client_as(MUNI) as client:
        answer = await _select(client, f"SELECT ?p ?o WHERE {{ <{B2}> ?p ?o }}")
    assert answer.status_code == 200
    assert answer.json()["results"]["bindings"] == []


@pytest.mark.anyio
async def test_point_lookup_in_a_format_not_offered_is_406(fed: Federation) -> None:
    async with await fed.client_as(MUNI) as client:
        answer = await client.get(
            "/sparql",
            params={"query": f"SELECT ?p ?o WHERE {{ <{B1}> ?p ?o }}"},
            headers={"accept": "image/png"},
        )
    assert answer.status_code == 406
    assert answer.json()["code"] == "not_acceptable"
