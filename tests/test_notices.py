"""What each pilot party is told about the fields it did not get, per node and class.

The notice (``gateway.policy.notice``) is a function of the caller's view and the owner's
policy: the same for every resource of a class the caller sees, whatever values each
holds. The table is the pilot's (examples/pilot/*/policies): ``fields`` are the ones the
owner's policy names and withholds from the reader; ``partial`` says fields the policy
does not name may be withheld too; ``None``: the reader is told nothing (it sees all).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pyoxigraph as ox
import pytest

from gateway.http.resources import notice_for
from gateway.node import Node
from gateway.policy.model import Caller, Grant
from gateway.policy.notice import Notice, Withheld, notice
from tests.test_pilot_config import IDS, PARTIES, settings_of

COST, DELIVERY = "props:constructionCost", "props:plannedDelivery"
TENANT = ("props:householdSize", "props:monthlyRent")
INSULATION = ("dsgo:rcFacade", "dsgo:rcRoof", "dsgo:uWindow")
FIRM_CLASSES = (
    "bot:Site",
    "bot:Storey",
    "bot:Element",
    "ifc:IfcSite",
    "ifc:IfcBuildingStorey",
    "ifc:IfcRoof",
    "ifc:IfcWall",
    "ifc:IfcWindow",
    "ifc:IfcSlab",
)
MATERIAL_CLASSES = ("dsgo:MaterialPart", "dsgo:MaterialLayer", "dsgo:MaterialConstituent")
#: what the firm gives its client, the corporation, and not the municipality
STRUCTURE = (
    "dsgo:buildingHeight",
    "dsgo:elevation",
    "dsgo:footprintArea",
    "dsgo:loadBearing",
    "dsgo:roofType",
    "dsgo:storeyCount",
)
PRODUCTS = (
    "rdfs:label",
    "dsgo:density",
    "dsgo:fraction",
    "dsgo:layerOrder",
    "dsgo:materialName",
    "dsgo:thickness",
)
BAG_CLASSES = ("bag:Pand", "bag:Verblijfsobject", "bot:Building")
Told = tuple[tuple[str, ...], bool] | None

#: (owner's node, reader, class) -> what the reader is told on every resource of the class
TABLE: dict[tuple[str, str, str], Told] = {
    **{
        ("firm", "firm", c): None
        for c in (*FIRM_CLASSES, *MATERIAL_CLASSES, "bot:Building", "ifc:IfcBuilding")
    },
    **{
        ("firm", "corporation", c): ((COST,), True)
        for c in (*FIRM_CLASSES, *MATERIAL_CLASSES, "bot:Building", "ifc:IfcBuilding")
    },
    **{("firm", "municipality", c): ((*STRUCTURE, COST), True) for c in FIRM_CLASSES},
    # the structure rule names no site: of a site the municipality is told the cost only
    **{("firm", "municipality", c): ((COST,), True) for c in ("bot:Site", "ifc:IfcSite")},
    **{("firm", "municipality", c): ((*PRODUCTS, COST), True) for c in MATERIAL_CLASSES},
    ("firm", "municipality", "bot:Building"): ((*STRUCTURE, COST, DELIVERY), True),
    ("firm", "municipality", "ifc:IfcBuilding"): ((*STRUCTURE, COST, DELIVERY), True),
    ("corporation", "firm", "bot:Building"): (
        ("dsgo:energyLabelDate", "dsgo:municipalityCode", *TENANT),
        True,
    ),
    ("corporation", "corporation", "bot:Building"): None,
    ("corporation", "municipality", "bot:Building"): ((*INSULATION, *TENANT), True),
    **{("municipality", r, c): ((), True) for r in ("firm", "corporation", "rvo") for c in BAG_CLASSES},
    **{("municipality", "municipality", c): None for c in BAG_CLASSES},
    **{("rvo", r, "dsgo:InsulationStandard"): None for r in PARTIES},
}


@pytest.fixture(scope="module")
def nodes() -> Iterator[dict[str, Node]]:
    made = {party: Node(replace(settings_of(party), store_path=None)) for party in PARTIES}
    try:
        for node in made.values():
            node.sources.refresh_all()
        yield made
    finally:
        for node in made.values():
            node.close()


def told(node: Node, reader: str, class_iri: str) -> set[Told]:
    """What ``reader`` is told on each resource of the class it sees, as a set."""
    grant = node.access.grant(Caller(IDS[reader]))
    out: set[Told] = set()
    for iri in node.access.members(grant, class_iri, node.namespace):
        decision = node.access.resource(grant, iri)
        assert decision is not None
        got = notice_for(node, grant, iri, decision.triples)
        out.add((tuple(node.vocab.curie(f) for f in got.fields), got.partial) if got else None)
    return out


@pytest.mark.parametrize(("owner", "reader", "cls"), sorted(TABLE))
def test_each_party_is_told_per_class_what_the_owners_policy_withholds(
    nodes: dict[str, Node], owner: str, reader: str, cls: str
) -> None:
    node = nodes[owner]
    class_iri = node.vocab.expand(cls)
    assert class_iri is not None
    assert told(node, reader, class_iri) == {TABLE[owner, reader, cls]}


def test_the_table_covers_every_class_each_party_sees(nodes: dict[str, Node]) -> None:
    seen = set()
    for owner, node in nodes.items():
        classes = {q.object.value for q in node.store.quads() if q.predicate.value.endswith("#type")}
        for reader in PARTIES:
            grant = node.access.grant(Caller(IDS[reader]))
            seen |= {
                (owner, reader, node.vocab.curie(c))
                for c in classes
                if node.access.members(grant, c, node.namespace)
            }
    assert seen == set(TABLE)


def test_homes_with_and_without_insulation_values_tell_the_municipality_the_same(
    nodes: dict[str, Node],
) -> None:
    node = nodes["corporation"]
    grant = node.access.grant(Caller(IDS["municipality"]))
    notices, counts = set(), set()
    for home in ("id/home/1001", "id/home/1003"):
        decision = node.access.resource(grant, node.namespace + home)
        assert decision is not None
        notices.add(notice_for(node, grant, node.namespace + home, decision.triples))
        counts.add(decision.withheld)
    assert len(notices) == 1 and len(counts) == 2  # the audit log keeps the real, differing counts


def test_the_note_names_the_owner_and_the_fields(nodes: dict[str, Node]) -> None:
    node = nodes["corporation"]
    grant = node.access.grant(Caller(IDS["municipality"]))
    home = node.namespace + "id/home/1001"
    decision = node.access.resource(grant, home)
    assert decision is not None
    got = notice_for(node, grant, home, decision.triples)
    assert got is not None and got.count == 5
    assert got.text(node.vocab.curie) == (
        "Fields are withheld: the policy of Woonstichting De Nieuwe Stad (EU.EORI.NL000000102) withholds "
        "dsgo:rcFacade, dsgo:rcRoof, dsgo:uWindow, props:householdSize, props:monthlyRent from you, and may "
        "withhold fields it does not name. Whether this resource has values for withheld fields is not shown."
    )


def test_an_open_node_tells_nothing() -> None:
    everything = Grant.of((), "none", everything=True)
    assert notice(None, everything, "https://data.test.example/id/1", [], "Test") is None


def test_a_node_without_policies_says_it_releases_only_some_fields() -> None:
    iri = "https://data.test.example/id/1"
    triple = ox.Triple(ox.NamedNode(iri), ox.NamedNode("urn:p"), ox.Literal("x"))
    assert notice(None, Grant.of((), "none"), iri, [triple], "Test") == Notice("Test", (), True)


def test_a_notice_header_reads_back_as_what_it_said() -> None:
    told = Notice("Owner", ("https://x.example/a", "https://x.example/b"), partial=True)
    assert told.header == "<https://x.example/a> <https://x.example/b> *"
    assert Withheld.from_header(told.header) == Withheld(frozenset(told.fields), partial=True)


@pytest.mark.parametrize("header", [None, "", "junk <> < > <a", "3"])
def test_a_peers_malformed_withheld_header_names_nothing(header: str | None) -> None:
    assert Withheld.from_header(header) == Withheld()
    assert not Withheld.from_header(header)


def test_withheld_fields_of_many_answers_add_up() -> None:
    a, b = Withheld.from_header("<https://x.example/a>"), Withheld.from_header("<https://x.example/b> *")
    assert a | b == Withheld(frozenset({"https://x.example/a", "https://x.example/b"}), partial=True)


def test_a_person_reads_which_fields_an_owner_withheld() -> None:
    told = Withheld.from_header("<https://x.example/b> <https://x.example/a> *")
    text = told.text(lambda iri: "x:" + iri.rsplit("/", 1)[-1], "Owner", "Reader")
    assert (
        text
        == "Withheld by Owner: its policy withholds x:a, x:b from Reader, and may withhold fields it does not name."
    )
    assert Withheld(partial=True).text(str, "Owner", "Reader") == (
        "Withheld by Owner: its policy withholds some fields of resources like this one from Reader."
    )
