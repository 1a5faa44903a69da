"""The pilot federation of examples/pilot/: every configuration loads, every source
converts, the parties' links meet, the policies release what the pilot's README says,
and the data answers the pilot's first question with the three expected homes (the other
questions, asked across real nodes: tests/test_pilot_questions.py)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import shutil
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pyoxigraph as ox
import pytest

from connectors import KINDS, SourceEnv
from gateway.config import NodeSettings, load_node_settings
from gateway.identity.pki import load_identity, make_ca, make_party
from gateway.node import Node
from gateway.policy.load import load_policies, policy_files
from gateway.policy.model import Caller
from gateway.registry import create_registry_app, load_registry_settings
from gateway.vocab import load_vocab

ROOT = Path(__file__).resolve().parent.parent
PILOT = ROOT / "examples" / "pilot"
PARTIES = ("firm", "corporation", "municipality", "rvo")
REGISTRY = "EU.EORI.NL000000100"
FIRM, CORP, MUNI = "EU.EORI.NL000000101", "EU.EORI.NL000000102", "EU.EORI.NL000000103"
RVO = "EU.EORI.NL000000104"
IDS = {"firm": FIRM, "corporation": CORP, "municipality": MUNI, "rvo": RVO}
PORTS = {"firm": 8201, "corporation": 8202, "municipality": 8203, "rvo": 8204}
BAG = "https://bag.basisregistraties.overheid.nl/id/"
FIRM_NS, CORP_NS = "https://data.bouwbedrijf.example/", "https://data.woonstichting.example/"

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
DSGO = "https://vocab.dsgo.example/def#"
PROPS = "https://w3id.org/props#"
BAG_DEF = "https://bag.basisregistraties.overheid.nl/def/bag#"

#: what the compose file's environment sets on every node (docker-compose.yml)
COMPOSE_ENV = {
    "DSGO_NODE_HOST": "0.0.0.0",
    "DSGO_REGISTRY_URL": "http://registry:8200",
    "DSGO_NODE_AUDIT": "/var/lib/dsgo/audit.sqlite",
}


def _v(term: ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple) -> str:
    """A term's value (quoted triples have none here)."""
    return "" if isinstance(term, ox.Triple) else term.value


def node_toml(party: str) -> Path:
    return PILOT / party / "node.toml"


def settings_of(party: str) -> NodeSettings:
    return load_node_settings(node_toml(party), {})


def triples_of(settings: NodeSettings) -> list[ox.Triple]:
    vocab = load_vocab()
    env = SourceEnv(base_iri=settings.base_iri, contexts=vocab.contexts, prefixes=vocab.prefixes)
    out: list[ox.Triple] = []
    for source in settings.sources:
        assert source.path is not None
        connector = KINDS[source.kind].make(source.path, source.options, env)
        out += connector.load()
        assert getattr(connector, "problems", []) == [], source.name
    return out


@pytest.fixture(scope="module")
def data() -> dict[str, list[ox.Triple]]:
    return {party: triples_of(settings_of(party)) for party in PARTIES}


@pytest.fixture(scope="module")
def nodes() -> Iterator[dict[str, Node]]:
    """Each party's node, in memory, with its sources read (no keys, no HTTP)."""
    made = {party: Node(replace(settings_of(party), store_path=None)) for party in PARTIES}
    try:
        for node in made.values():
            node.sources.refresh_all()
        yield made
    finally:
        for node in made.values():
            node.close()


def registry_toml() -> dict[str, object]:
    return tomllib.loads((PILOT / "registry.toml").read_text())


def entries() -> dict[str, dict[str, object]]:
    parties = registry_toml()["party"]
    assert isinstance(parties, list)
    return {p["id"]: p for p in parties}


# -- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize("party", PARTIES)
def test_node_configuration_loads_with_keys_and_registry_in_the_repository(party: str) -> None:
    s = settings_of(party)
    assert (s.party_id, s.port, s.open) == (IDS[party], PORTS[party], False)
    assert s.keys_dir == ROOT / "keys" / IDS[party]
    assert s.registry_url == "http://127.0.0.1:8200" and s.registry_id == REGISTRY
    assert s.registry_ca == (ROOT / "keys" / "ca" / "root.cert.pem",)
    assert s.policies_dir == PILOT / party / "policies"
    assert s.sources and all(src.path is not None and src.path.is_file() for src in s.sources)


@pytest.mark.parametrize("party", PARTIES)
def test_audit_log_lands_in_a_git_ignored_state_folder(party: str) -> None:
    audit = settings_of(party).audit_path
    assert audit is not None and audit.is_relative_to(PILOT / "state")
    assert "examples/*/state/" in (ROOT / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize("party", PARTIES)
def test_compose_environment_adapts_the_same_file(party: str) -> None:
    s = load_node_settings(node_toml(party), COMPOSE_ENV)
    assert (s.host, s.port, s.registry_url) == ("0.0.0.0", PORTS[party], "http://registry:8200")
    assert s.audit_path == Path("/var/lib/dsgo/audit.sqlite")
    assert s.sources == settings_of(party).sources


@pytest.mark.parametrize("party", PARTIES)
def test_registry_lists_the_node_at_its_port_and_namespace(party: str) -> None:
    s = settings_of(party)
    entry = entries()[s.party_id]
    assert entry["endpoint"] == f"http://127.0.0.1:{s.port}"
    assert entry["namespaces"] == [s.base_iri]
    assert entry["certificates"] == [f"../../keys/{s.party_id}/chain.pem"]


def test_municipality_owns_the_bag_namespace() -> None:
    assert settings_of("municipality").base_iri == BAG
    owners = [pid for pid, e in entries().items() if BAG in str(e["namespaces"])]
    assert owners == [MUNI]


def test_registry_and_nodes_load_with_keys_made_for_them(tmp_path: Path) -> None:
    copy = tmp_path / "examples" / "pilot"
    shutil.copytree(PILOT, copy, ignore=shutil.ignore_patterns("state", "__pycache__"))
    keys = tmp_path / "keys"
    make_ca(keys / "ca")
    for party in (REGISTRY, FIRM, CORP, MUNI, RVO):
        make_party(party, keys / party, keys / "ca")
    settings = load_registry_settings(copy / "registry.toml")
    assert (settings.party_id, settings.port) == (REGISTRY, 8200)
    assert {p.party_id for p in settings.parties} == {FIRM, CORP, MUNI, RVO}
    assert all(p.active_at(dt.datetime.now(dt.UTC)) is None for p in settings.parties)
    create_registry_app(settings)  # reads and checks the registry's own key
    for party in PARTIES:
        s = load_node_settings(copy / party / "node.toml", {})
        assert s.keys_dir is not None and load_identity(s.keys_dir).party_id == s.party_id
        assert all(path.is_file() for path in s.registry_ca)


@pytest.mark.parametrize("party", PARTIES)
def test_policy_files_load(party: str) -> None:
    s = settings_of(party)
    assert s.policies_dir is not None
    files = policy_files(s.policies_dir)
    assert len(files) == 1
    assert load_policies(files, load_vocab()).rules


# -- data --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("party", "resources"), [("firm", 160), ("corporation", 8), ("municipality", 20), ("rvo", 2)]
)
def test_every_source_converts_without_problems(
    data: dict[str, list[ox.Triple]], party: str, resources: int
) -> None:
    subjects = {t.subject for t in data[party] if isinstance(t.subject, ox.NamedNode)}
    assert len(subjects) == resources
    assert all(s.value.startswith(settings_of(party).base_iri) for s in subjects)


def _links_into_bag(triples: list[ox.Triple]) -> set[str]:
    return {
        _v(t.object) for t in triples if isinstance(t.object, ox.NamedNode) and _v(t.object).startswith(BAG)
    }


@pytest.mark.parametrize("party", ["firm", "corporation"])
def test_every_bag_link_is_published_by_the_municipality(
    data: dict[str, list[ox.Triple]], party: str
) -> None:
    published = {_v(t.subject) for t in data["municipality"] if t.predicate.value == RDF_TYPE}
    links = _links_into_bag(data[party])
    assert links and links <= published


def test_bag_links_point_to_objects_of_the_right_kind(data: dict[str, list[ox.Triple]]) -> None:
    kinds = {
        (_v(t.subject), _v(t.object))
        for t in data["municipality"]
        if t.predicate.value == RDF_TYPE and _v(t.object).startswith(BAG_DEF)
    }
    for party in ("firm", "corporation"):
        for t in data[party]:
            if t.predicate.value == DSGO + "bagPand":
                assert (_v(t.object), BAG_DEF + "Pand") in kinds
            elif t.predicate.value == DSGO + "bagVerblijfsobject":
                assert (_v(t.object), BAG_DEF + "Verblijfsobject") in kinds


def test_every_model_is_of_a_home_of_the_corporation(data: dict[str, list[ox.Triple]]) -> None:
    def pands(triples: list[ox.Triple]) -> set[str]:
        return {_v(t.object) for t in triples if t.predicate.value == DSGO + "bagPand"}

    assert len(pands(data["firm"])) == 5
    assert pands(data["firm"]) <= pands(data["corporation"])


def test_pilot_data_conforms_to_the_vocabulary_shapes(data: dict[str, list[ox.Triple]]) -> None:
    rdflib = pytest.importorskip("rdflib")
    pyshacl = pytest.importorskip("pyshacl")
    graph = rdflib.Graph()
    for triples in data.values():
        graph.parse(data=(ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES) or b"").decode(), format="nt")
    shapes = rdflib.Graph().parse(ROOT / "vocab" / "shapes.ttl")
    conforms, _, report = pyshacl.validate(graph, shacl_graph=shapes)
    assert conforms, report


def _make_models() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pilot_make_models", PILOT / "make_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves annotations through the module
    writes, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in examples/
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
        sys.dont_write_bytecode = writes
    return module


def _data_section(path: Path) -> str:
    return path.read_text().partition("DATA;")[2]


def test_committed_models_are_what_make_models_writes(tmp_path: Path) -> None:
    written = _make_models().write_models(tmp_path)
    committed = sorted((PILOT / "firm" / "models").glob("*.ifc"))
    assert sorted(p.name for p in written) == [p.name for p in committed]
    for path in committed:
        assert _data_section(tmp_path / path.name) == _data_section(path), path.name
        assert path.stat().st_size < 20_000


# -- policies ----------------------------------------------------------------------------

IFC_NS = "https://standards.buildingsmart.org/IFC/DEV/IFC4/ADD2/OWL#"
BOT = "https://w3id.org/bot#"
DCT = "http://purl.org/dc/terms/"
STANDARD = "https://data.rvo.example/id/standaard/woningisolatie-2021"
HOME_1001 = CORP_NS + "id/home/1001"
HOME_1007 = CORP_NS + "id/home/1007"  # Amstelveen (0362)
HOME_1005 = CORP_NS + "id/home/1005"  # no renovation planned
PAND_1 = BAG + "pand/0363100012000001"
VBO_1 = BAG + "verblijfsobject/0363010012000001"


def _building_of(data: list[ox.Triple], pand: str) -> str:
    return next(_v(t.subject) for t in data if t.predicate.value == DSGO + "bagPand" and _v(t.object) == pand)


def _first_of(data: list[ox.Triple], cls: str, among: set[str]) -> str:
    return min(
        _v(t.subject)
        for t in data
        if t.predicate.value == RDF_TYPE and _v(t.object) == cls and _v(t.subject) in among
    )


def _resource(data: list[ox.Triple], name: str) -> str:
    """Zaaiersweg 12's building in the firm's model, its roof, its first floor slab, or
    the first material part of its roof."""
    building = _building_of(data, PAND_1)
    elements = _elements_of(data, building)
    roof = _first_of(data, IFC_NS + "IfcRoof", elements)
    return {
        "building": building,
        "roof": roof,
        "floor": _first_of(data, IFC_NS + "IfcSlab", elements),
        "part": roof + "/material/1",
    }[name]


def _elements_of(data: list[ox.Triple], building: str) -> set[str]:
    storeys = {
        _v(t.object) for t in data if t.predicate.value == BOT + "hasStorey" and _v(t.subject) == building
    }
    return {
        _v(t.object)
        for t in data
        if t.predicate.value == BOT + "containsElement" and _v(t.subject) in storeys
    }


def _released(node: Node, party: str, iri: str) -> dict[str, bool]:
    return {r.field: r.released for r in node.access.explain(Caller(party), iri)}


#: (node, reader, resource, field, released?): the table of examples/pilot/README.md
DECISIONS = [
    ("corporation", MUNI, HOME_1001, DSGO + "energyLabel", True),
    ("corporation", MUNI, HOME_1001, DSGO + "plannedRenovationYear", True),
    ("corporation", MUNI, HOME_1001, DSGO + "rcRoof", False),
    ("corporation", MUNI, HOME_1001, PROPS + "householdSize", False),
    ("corporation", MUNI, HOME_1001, PROPS + "monthlyRent", False),
    ("corporation", MUNI, HOME_1007, DSGO + "energyLabel", False),
    ("corporation", FIRM, HOME_1001, DSGO + "rcRoof", True),
    ("corporation", FIRM, HOME_1001, PROPS + "monthlyRent", False),
    ("corporation", FIRM, HOME_1005, DSGO + "energyLabel", False),
    ("corporation", CORP, HOME_1001, PROPS + "monthlyRent", True),
    ("firm", MUNI, "building", DSGO + "bagPand", True),
    ("firm", MUNI, "building", PROPS + "plannedDelivery", False),
    ("firm", MUNI, "building", PROPS + "constructionCost", False),
    ("firm", MUNI, "roof", PROPS + "thermalResistance", True),
    ("firm", MUNI, "roof", DSGO + "uValue", True),
    ("firm", CORP, "building", PROPS + "plannedDelivery", True),
    ("firm", CORP, "building", PROPS + "constructionCost", False),
    ("firm", FIRM, "building", PROPS + "constructionCost", True),
    ("firm", MUNI, "part", DSGO + "materialCategory", True),
    ("firm", MUNI, "part", DSGO + "volume", True),
    ("firm", MUNI, "part", DSGO + "materialName", False),
    ("firm", MUNI, "part", DSGO + "thickness", False),
    ("firm", CORP, "part", DSGO + "materialName", True),
    ("firm", CORP, "part", DSGO + "thickness", True),
    ("firm", MUNI, "roof", DSGO + "hasMaterialPart", True),
    ("firm", MUNI, "building", DSGO + "roofType", False),
    ("firm", MUNI, "building", DSGO + "storeyCount", False),
    ("firm", CORP, "building", DSGO + "roofType", True),
    ("firm", CORP, "building", DSGO + "storeyCount", True),
    ("firm", CORP, "building", DSGO + "buildingHeight", True),
    ("firm", CORP, "floor", DSGO + "loadBearing", True),
    ("firm", MUNI, "floor", DSGO + "loadBearing", False),
    ("municipality", CORP, VBO_1, DSGO + "address", True),
    ("municipality", CORP, PAND_1, DSGO + "maxBuildingHeight", True),
    ("municipality", FIRM, PAND_1, DSGO + "footprintArea", True),
    ("rvo", CORP, STANDARD, DSGO + "requirement", True),
    ("rvo", MUNI, STANDARD, DCT + "source", True),
    ("municipality", FIRM, PAND_1, DSGO + "buildingYear", True),
    ("municipality", FIRM, VBO_1, PROPS + "wozValue", False),
    ("municipality", MUNI, VBO_1, PROPS + "wozValue", True),
]


@pytest.mark.parametrize(("node", "reader", "resource", "field", "released"), DECISIONS)
def test_policies_release_exactly_what_the_pilot_promises(
    nodes: dict[str, Node],
    data: dict[str, list[ox.Triple]],
    node: str,
    reader: str,
    resource: str,
    field: str,
    released: bool,
) -> None:
    if resource in ("building", "roof", "floor", "part"):
        resource = _resource(data["firm"], resource)
    assert _released(nodes[node], reader, resource).get(field, False) is released


def test_tenant_fields_and_costs_reach_no_other_party(nodes: dict[str, Node]) -> None:
    private = {
        "corporation": {PROPS + "householdSize", PROPS + "monthlyRent"},
        "firm": {PROPS + "constructionCost"},
        "municipality": {PROPS + "wozValue"},
    }
    for owner, fields in private.items():
        node = nodes[owner]
        for reader in {FIRM, CORP, MUNI, RVO} - {IDS[owner]}:
            view = node.access.view(node.access.grant(Caller(reader)))
            assert not any(q.predicate.value in fields for q in view), (owner, reader)


# -- the question ----------------------------------------------------------------------

EXPECTED_ROWS = [
    ("Hugo de Vrieslaan 7, 1097 EA Amsterdam", "G", "1965", "2026", "0.4", "0.19", "5.1"),
    ("Zaaiersweg 12, 1097 SR Amsterdam", "F", "1958", "2027", "1.3", "0.36", "2.8"),
    ("Zaaiersweg 14, 1097 SR Amsterdam", "E", "1958", "2027", "2.5", "0.36", "1.8"),
]


def test_question_is_answered_from_what_the_municipality_may_see(nodes: dict[str, Node]) -> None:
    union = ox.Store()
    for node in nodes.values():
        union.extend(node.access.view(node.access.grant(Caller(MUNI))))
    query = (PILOT / "queries" / "labels-and-insulation.rq").read_text()
    rows = union.query(query)
    assert isinstance(rows, ox.QuerySolutions)
    names = ("address", "label", "buildingYear", "renovation", "rcRoof", "rcFacade", "uWindow")
    got = [tuple(row[n].value if row[n] is not None else None for n in names) for row in rows]
    assert got == EXPECTED_ROWS


def test_question_names_start_iris_in_registered_namespaces() -> None:
    text = (PILOT / "queries" / "labels-and-insulation.rq").read_text()
    starts = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("# start:")]
    assert starts == [CORP_NS + "collections/bot:Building", FIRM_NS + "collections/bot:Building"]
    for start in starts:
        assert start in text.split("# start:")[0]  # the command line in the comment names it too
