"""The vocabulary folder: every file parses, the shapes accept the example data and
reject bad records."""

from __future__ import annotations

from pathlib import Path

import pyoxigraph as ox
import pytest
import rdflib
from pyshacl import validate

from gateway.vocab import DSGO, load_vocab, vocab_dir

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["bot.ttl", "dsgo.ttl", "shapes.ttl"])
def test_vocabulary_files_parse(name: str) -> None:
    assert list(ox.parse(path=str(vocab_dir() / name)))


def test_project_terms_are_all_declared_with_labels() -> None:
    terms = {
        q.subject.value
        for q in ox.parse(path=str(vocab_dir() / "dsgo.ttl"))
        if q.subject.value.startswith(DSGO)
    }
    for local in (
        "energyLabel",
        "energyLabelDate",
        "rcRoof",
        "rcFacade",
        "rcFloor",
        "uWindow",
        "bagPand",
        "bagVerblijfsobject",
        "buildingYear",
        "municipalityCode",
    ):
        assert DSGO + local in terms


def test_context_prefixes_include_bot_and_dsgo() -> None:
    vocab = load_vocab()
    assert vocab.prefixes["bot"] == "https://w3id.org/bot#"
    assert vocab.prefixes["dsgo"] == DSGO
    assert vocab.expand("bot:Building") == "https://w3id.org/bot#Building"
    assert vocab.expand("nope:x") is None
    assert vocab.curie(DSGO + "rcRoof") == "dsgo:rcRoof"


def _conforms(data: str) -> tuple[bool, str]:
    shapes = rdflib.Graph().parse(vocab_dir() / "shapes.ttl")
    graph = rdflib.Graph().parse(data=data, format="turtle", publicID="https://data.x.example/")
    conforms, _, text = validate(graph, shacl_graph=shapes)
    return bool(conforms), str(text)


def test_example_data_conforms_to_the_shapes() -> None:
    text = (ROOT / "examples" / "hello" / "data" / "buildings.ttl").read_text()
    conforms, report = _conforms(text)
    assert conforms, report


@pytest.mark.parametrize(
    "bad",
    [
        'dsgo:energyLabel "H"',
        'dsgo:municipalityCode "363"',
        "dsgo:rcRoof -1.0",
        "dsgo:bagPand <https://example.org/pand/1>",
        'dsgo:buildingYear "nineteen"',
    ],
)
def test_shapes_reject_bad_records(bad: str) -> None:
    data = f"""@prefix bot: <https://w3id.org/bot#> . @prefix dsgo: <{DSGO}> .
    <id/building/1> a bot:Building ; {bad} ."""
    conforms, _ = _conforms(data)
    assert not conforms


_PREFIXES = f"""@prefix bot: <https://w3id.org/bot#> . @prefix dsgo: <{DSGO}> .
@prefix qudt: <http://qudt.org/schema/qudt/> . @prefix unit: <http://qudt.org/vocab/unit/> .
@prefix dct: <http://purl.org/dc/terms/> . @prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
"""
_LAYER = """<id/ifc/w/material/1> a dsgo:MaterialPart, dsgo:MaterialLayer ; dsgo:layerOrder 1 ;
    dsgo:thickness [ qudt:numericValue 0.16 ; qudt:unit unit:M ] ; """
_STANDARD = """<id/standaard/x> a dsgo:InsulationStandard ; rdfs:label "x" ;
    dct:source <https://example.org/source> ; dct:issued "2021-07-23"^^xsd:date ; """


def test_a_material_layer_and_a_standard_conform() -> None:
    good = (
        _PREFIXES
        + _LAYER
        + 'dsgo:materialCategory "biobased" ; dsgo:volume [ qudt:numericValue 1.92 ; qudt:unit unit:M3 ] .\n'
        + _STANDARD
        + 'dsgo:requirement [ dsgo:buildingPart "roof" ; dsgo:minimumRc 3.5 ] .'
    )
    conforms, report = _conforms(good)
    assert conforms, report


@pytest.mark.parametrize(
    "bad",
    [
        _LAYER + 'dsgo:materialCategory "wood" .',
        _LAYER + 'dsgo:materialCategory "biobased", "mineral" .',
        _LAYER
        + 'dsgo:materialCategory "biobased" ; dsgo:volume [ qudt:numericValue 1.9 ; qudt:unit unit:M ] .',
        _LAYER + 'dsgo:materialCategory "biobased" ; dsgo:fraction 1.5 .',
        '<id/ifc/w/material/1> a dsgo:MaterialPart, dsgo:MaterialLayer ; dsgo:materialCategory "mineral" .',
        _STANDARD
        + 'dsgo:requirement [ dsgo:buildingPart "roof" ; dsgo:minimumRc 3.5 ; dsgo:maximumU 1.4 ] .',
        _STANDARD + 'dsgo:requirement [ dsgo:buildingPart "chimney" ; dsgo:minimumRc 3.5 ] .',
        '<id/standaard/y> a dsgo:InsulationStandard ; rdfs:label "y" ; dct:issued "2021-07-23"^^xsd:date ;'
        ' dsgo:requirement [ dsgo:buildingPart "roof" ; dsgo:minimumRc 3.5 ] .',
        '<id/building/1> a bot:Building ; dsgo:roofType "flat" .',
        '<id/building/1> a bot:Building ; dsgo:storeyCount "two" .',
    ],
)
def test_shapes_reject_bad_materials_structure_and_standards(bad: str) -> None:
    conforms, _ = _conforms(_PREFIXES + bad)
    assert not conforms
