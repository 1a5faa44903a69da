"""Representations: round trips, JSON-LD equal to pyld's, negotiation."""

from __future__ import annotations

import json

import pyoxigraph as ox
import pytest
import rdflib
from hypothesis import given, settings
from hypothesis import strategies as st
from pyld import jsonld
from rdflib.compare import isomorphic

from gateway.errors import NotAcceptable
from gateway.formats import FORMATS, Page, negotiate
from gateway.formats.jsonld import compact
from gateway.vocab import load_vocab

VOCAB = load_vocab()
NS = "https://data.test.example/"
PAGE = Page(VOCAB, NS, NS + "id/building/1")
XSD = "http://www.w3.org/2001/XMLSchema#"
DSGO = "https://vocab.dsgo.example/def#"
BY_NAME = {f.name: f for f in FORMATS}


def sample() -> list[ox.Triple]:
    data = f"""
    @prefix bot: <https://w3id.org/bot#> . @prefix dsgo: <{DSGO}> .
    @prefix xsd: <{XSD}> . @prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
    <id/building/1> a bot:Building, <https://example.org/Other> ;
        rdfs:label "Kerkstraat 1"@nl, "Church street 1"@en, "plain \\"quoted\\" \\n text" ;
        dsgo:rcRoof 2.5 ; dsgo:buildingYear "1971"^^xsd:gYear ; dsgo:custom "x"^^<https://example.org/dt> ;
        bot:hasStorey <id/building/1/storey/0>, <id/building/1/storey/1> ;
        <https://w3id.org/bot#> "a property equal to a prefix" ;
        dsgo:floorArea [ dsgo:value 81 ; dsgo:unit [ rdfs:label "m2" ] ] .
    """
    return [q.triple for q in ox.parse(data, ox.RdfFormat.TURTLE, base_iri=NS)]


def to_rdflib(triples: list[ox.Triple]) -> rdflib.Graph:
    g = rdflib.Graph()
    g.parse(data=ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES), format="nt")
    return g


@pytest.mark.parametrize(("fmt", "rdflib_format"), [("turtle", "turtle"), ("ntriples", "nt")])
def test_each_rdf_format_round_trips_to_the_same_triples(fmt: str, rdflib_format: str) -> None:
    triples = sample()
    body = BY_NAME[fmt].render(triples, PAGE)
    parsed = rdflib.Graph().parse(data=body, format=rdflib_format)
    assert isomorphic(parsed, to_rdflib(triples))


def test_jsonld_round_trips_to_the_same_triples() -> None:
    # read back by pyld (rdflib's JSON-LD reader warns of its own deprecations)
    triples = sample()
    doc = json.loads(BY_NAME["jsonld"].render(triples, PAGE))
    nquads = jsonld.to_rdf(doc, {"format": "application/n-quads"})
    assert isomorphic(rdflib.Graph().parse(data=nquads, format="nt"), to_rdflib(triples))


def test_jsonld_is_what_pyld_compacts_from_the_same_triples() -> None:
    triples = sample()
    nquads = ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES).decode()
    expanded = jsonld.from_rdf(nquads, {"format": "application/n-quads"})
    reference = jsonld.compact(expanded, VOCAB.context)
    ours = json.loads(BY_NAME["jsonld"].render(triples, PAGE))
    assert ours == reference


_iris = st.sampled_from(
    [
        NS + "id/a",
        NS + "id/b",
        "https://w3id.org/bot#Building",
        "https://w3id.org/bot#hasStorey",
        DSGO + "rcRoof",
        DSGO + "x",
        "http://www.w3.org/2000/01/rdf-schema#label",
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#type",
        "https://example.org/unprefixed",
        "http://qudt.org/vocab/unit/M2",
        "http://qudt.org/schema/qudt/unit",
    ]
)
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
_literals = st.one_of(
    _text.map(ox.Literal),
    st.tuples(_text.filter(bool), st.sampled_from(["nl", "en", "de-ch"])).map(
        lambda t: ox.Literal(t[0], language=t[1])
    ),
    st.tuples(st.integers(-5, 5), st.sampled_from(["integer", "decimal", "gYear", "string"])).map(
        lambda t: ox.Literal(str(t[0]), datatype=ox.NamedNode(XSD + t[1]))
    ),
)
_blanks = st.sampled_from(["b1", "b2"]).map(ox.BlankNode)
_subjects = st.one_of(_iris.map(ox.NamedNode), _blanks)
_objects = st.one_of(_iris.map(ox.NamedNode), _literals, _blanks)
_triples = st.lists(st.builds(ox.Triple, _subjects, _iris.map(ox.NamedNode), _objects), max_size=12)


@settings(max_examples=150, deadline=None)
@given(_triples)
def test_jsonld_equals_pyld_for_any_graph(triples: list[ox.Triple]) -> None:
    # pyld is handed the graph as its own RDF dataset, not as N-Quads text: its N-Quads
    # reader reads an escaped backslash before an n as a backslash and a newline, and
    # leaves \\uXXXX escaped; the reference must not carry a parser's slips
    ordered = list(dict.fromkeys(triples))  # a graph: each triple once, in a fixed order
    dataset = {"@default": [_pyld_triple(t) for t in ordered]}
    reference = jsonld.compact(jsonld.from_rdf(dataset), VOCAB.context)
    assert compact(ordered, VOCAB.context["@context"], VOCAB.prefixes) == reference


def _pyld_term(term: ox.NamedNode | ox.BlankNode | ox.Literal) -> dict[str, str]:
    """A term as pyld's RDF dataset holds it (``jsonld.from_rdf`` without a format)."""
    if isinstance(term, ox.NamedNode):
        return {"type": "IRI", "value": term.value}
    if isinstance(term, ox.BlankNode):
        return {"type": "blank node", "value": "_:" + term.value}
    out = {"type": "literal", "value": term.value, "datatype": term.datatype.value}
    if term.language:
        out["language"] = term.language
    return out


def _pyld_triple(triple: ox.Triple) -> dict[str, dict[str, str]]:
    parts = ("subject", "predicate", "object")
    return {name: _pyld_term(getattr(triple, name)) for name in parts}


def test_html_links_own_iris_to_local_paths_and_escapes_text() -> None:
    triples = [
        *sample(),
        ox.Triple(
            ox.NamedNode(NS + "id/building/1"), ox.NamedNode(DSGO + "note"), ox.Literal("<script>x</script>")
        ),
    ]
    body = BY_NAME["html"].render(triples, PAGE).decode()
    assert (
        'resource="https://data.test.example/id/building/1/storey/0" href="/id/building/1/storey/0"' in body
    )
    assert 'resource="https://w3id.org/bot#Building" href="/vocab/bot:Building">Building</a>' in body
    assert "<script>x</script>" not in body and "&lt;script&gt;" in body


def test_turtle_uses_only_the_prefixes_it_needs() -> None:
    body = BY_NAME["turtle"].render(sample(), PAGE).decode()
    assert "@prefix bot:" in body and "@prefix dsgo:" in body
    assert "@prefix void:" not in body and "@prefix hydra:" not in body


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "turtle"),
        ("", "turtle"),
        ("*/*", "turtle"),
        ("text/turtle", "turtle"),
        ("application/ld+json", "jsonld"),
        ("application/json", "jsonld"),
        ("application/n-triples", "ntriples"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "html"),
        ("application/ld+json;q=0.5, text/turtle;q=0.4", "jsonld"),
        ("text/*;q=0.9, application/ld+json;q=0.8", "turtle"),
        ("text/turtle;q=0, */*;q=0.1", "jsonld"),
        ("image/png, */*;q=0.01", "turtle"),
    ],
)
def test_negotiation_picks_the_best_offered_format(accept: str | None, expected: str) -> None:
    assert negotiate(accept).name == expected


@pytest.mark.parametrize("accept", ["image/png", "application/pdf, text/csv", "text/turtle;q=0"])
def test_negotiation_refuses_what_it_cannot_make(accept: str) -> None:
    with pytest.raises(NotAcceptable, match="offered: text/turtle"):
        negotiate(accept)
