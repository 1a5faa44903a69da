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
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.formats.results import RESULT_FORMATS
from gateway.sparql import point
from gateway.sparql.worker import Request, render_rows, render_solutions
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


# -- the commonest form, evaluated without the query engine -----------------------------

_SUBJECTS = [ox.NamedNode(f"{NS}s{i}") for i in range(3)]
_PREDICATES = [ox.NamedNode(f"{NS}p{i}") for i in range(3)]
_OBJECTS = [
    *_SUBJECTS,
    ox.Literal("x"),
    ox.Literal("x", language="nl"),
    ox.Literal("1", datatype=ox.NamedNode("http://www.w3.org/2001/XMLSchema#integer")),
    ox.Literal('a "quoted"\nline'),
    ox.BlankNode("b0"),
]
_GRAPHS = [ox.NamedNode(f"urn:test:g{i}") for i in range(2)]


@st.composite
def _lookups(draw: st.DrawFn) -> tuple[list[ox.Quad], str]:
    """Quads in two graphs (a triple may be in both) and a point look-up of one subject."""
    quads = draw(
        st.lists(
            st.builds(
                ox.Quad,
                st.sampled_from(_SUBJECTS),
                st.sampled_from(_PREDICATES),
                st.sampled_from(_OBJECTS),
                st.sampled_from(_GRAPHS),
            ),
            max_size=20,
        )
    )
    p = draw(st.sampled_from(["?p", "$p", *(str(t) for t in _PREDICATES)]))
    o = draw(st.sampled_from(["?o", "$o", *(str(t) for t in _SUBJECTS)]))
    if p[0] not in "?$" and o[0] not in "?$":
        p = "?p"  # at least one variable to select
    names = [t[1:] for t in (p, o) if t[0] in "?$"]
    selected = draw(st.permutations(names).flatmap(lambda n: st.integers(1, len(n)).map(lambda k: n[:k])))
    head = draw(st.sampled_from(["SELECT", "select"])) + " " + " ".join("?" + v for v in selected)
    where = draw(st.sampled_from(["WHERE ", ""]))
    return quads, f"{head} {where}{{ {draw(st.sampled_from(_SUBJECTS))} {p} {o} . }}"


@settings(max_examples=300, deadline=None)
@given(_lookups(), st.sampled_from(["application/json", "text/csv", "text/xml", "text/tab-separated-values"]))
def test_point_lookup_evaluated_here_answers_the_bytes_of_the_query_engine(
    case: tuple[list[ox.Quad], str], accept: str
) -> None:
    quads, query = case
    store = ox.Store()
    store.extend(quads)
    found = point.lookup(query)
    assert found is not None
    dataset: list[ox.NamedNode | ox.BlankNode | ox.DefaultGraph] = list(_GRAPHS)
    engine = store.query(query, default_graph=dataset, named_graphs=[], base_iri=NS)
    assert isinstance(engine, ox.QuerySolutions)
    expected = render_solutions(engine, accept, 1000, True)
    rows = found.rows(store, tuple(g.value for g in _GRAPHS), 1000)
    assert rows is not None
    assert render_rows(list(found.variables), rows, RESULT_FORMATS[accept], True, bound=True) == expected


@pytest.mark.parametrize(
    "query",
    [
        f"SELECT * WHERE {{ <{B1}> ?p ?o }}",  # the engine orders the variables of *
        f"SELECT ?p ?z WHERE {{ <{B1}> ?p ?o }}",  # ?z is unbound
        f"SELECT ?p WHERE {{ <{B1}> ?p ?p }}",  # one variable in two places
        f"SELECT ?p ?p WHERE {{ <{B1}> ?p ?o }}",  # a syntax error the worker explains
        "SELECT ?p ?o WHERE { <id/building/1> ?p ?o }",  # relative: resolved against the base
        f"SELECT ?p ?o WHERE {{ <{NS}gebouw/é> ?p ?o }}",  # not ASCII
    ],
)
def test_point_lookup_of_another_form_is_left_to_the_query_engine(query: str) -> None:
    assert point.is_point(query) and point.lookup(query) is None


def test_point_lookup_beyond_the_limit_is_none() -> None:
    store, graph = _store_with(5)
    found = point.lookup(f"SELECT ?p WHERE {{ <{B1}> ?p ?o }}")
    assert found is not None
    assert found.rows(store.label_reader().ox, (graph,), 4) is None


def test_point_lookup_asked_again_after_a_change_answers_the_new_data() -> None:
    store, graph = _store_with(3)
    first = point.answer_here(store, _request(graph), store.labels(), {})
    store.replace_source(
        "s",
        (ox.Triple(ox.NamedNode(B1), ox.NamedNode(f"{NS}p{i}"), ox.Literal(str(i))) for i in range(5)),
        "g",
    )
    graph = store.sources()["s"].graph.value
    again = point.answer_here(store, _request(graph), store.labels(), {})
    assert first is not None and again is not None
    assert [len(orjson.loads(a[1])["results"]["bindings"]) for a in (first, again)] == [3, 5]
