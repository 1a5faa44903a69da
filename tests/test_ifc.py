"""IFC models as BOT: the sample models (IFC2X3 in mm and m, IFC4), models written with
IfcOpenShell's own API, units, U-values, BAG links, and every kind of bad file."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ifcopenshell
import ifcopenshell.api
import pyoxigraph as ox
import pytest
import rdflib
from pyshacl import validate

import connectors.ifc
from connectors import KINDS, SourceEnv
from connectors.ifc import IfcModel, property_name
from gateway.config import load_node_settings
from gateway.errors import ConfigError, SourceError
from gateway.vocab import DSGO, vocab_dir
from tests.conftest import write_node

NS = "https://data.test.example/"
ENV = SourceEnv(base_iri=NS)
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
DUPLEX = ROOT.parent / "shared" / "data" / "Duplex_AJ.ifc"

BOT = "https://w3id.org/bot#"
IFC = "https://standards.buildingsmart.org/IFC/DEV/IFC4/ADD2/OWL#"
PROPS = "https://w3id.org/props#"
QUDT = "http://qudt.org/schema/qudt/"
UNIT = "http://qudt.org/vocab/unit/"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
BAG_PAND = "https://bag.basisregistraties.overheid.nl/id/pand/"

BUILDING = NS + "id/ifc/3dW-chZ2P2nBViVyUAoHql"  # smallhouse's IfcBuilding, GlobalId 3dW$chZ2...
SPACE_1 = NS + "id/ifc/1Y9nGTxX90dwWkO9TbXfa9"
WALL = NS + "id/ifc/1Y9nGTxX90dwWkO9TbXfOF"  # 21 m long, hosts two windows
WINDOW = NS + "id/ifc/1Y9nGTxX90dwWkO9TbXfTi"


class Graph:
    """Just enough querying over a list of triples to assert exact values."""

    def __init__(self, triples: Iterable[ox.Triple]) -> None:
        self.triples = list(triples)

    def objects(self, subject: str | ox.BlankNode, predicate: str) -> list[Any]:
        s = ox.NamedNode(subject) if isinstance(subject, str) else subject
        return [t.object for t in self.triples if t.subject == s and t.predicate.value == predicate]

    def value(self, subject: str | ox.BlankNode, predicate: str) -> Any:
        [found] = self.objects(subject, predicate)
        return found

    def of_type(self, cls: str) -> set[str]:
        return {
            t.subject.value for t in self.triples if t.predicate.value == RDF_TYPE and t.object.value == cls
        }

    def links(self, predicate: str) -> set[tuple[str, str]]:
        return {(t.subject.value, t.object.value) for t in self.triples if t.predicate.value == predicate}

    def quantity(self, subject: str, predicate: str) -> tuple[str, str, str]:
        """(number, its datatype, its QUDT unit) of a quantity-value property."""
        node = self.value(subject, predicate)
        number = self.value(node, QUDT + "numericValue")
        return number.value, number.datatype.value, self.value(node, QUDT + "unit").value


def convert(path: Path, **options: Any) -> Graph:
    return Graph(IfcModel.make(path, options, ENV).load())


@pytest.fixture(scope="module")
def smallhouse() -> Graph:
    return convert(FIXTURES / "smallhouse.ifc")


# -- the sample models --------------------------------------------------------------------


def test_smallhouse_spatial_structure_maps_to_bot_classes(smallhouse: Graph) -> None:
    counts = {c: len(smallhouse.of_type(BOT + c)) for c in ("Site", "Building", "Storey", "Space", "Element")}
    assert counts == {"Site": 1, "Building": 1, "Storey": 2, "Space": 3, "Element": 20}


def test_smallhouse_zones_are_linked_site_building_storey_space(smallhouse: Graph) -> None:
    level1, level2 = NS + "id/ifc/3dW-chZ2P2nBViVyTrDkFf", NS + "id/ifc/3dW-chZ2P2nBViVyTrDk1e"
    assert smallhouse.links(BOT + "hasBuilding") == {(NS + "id/ifc/1Y9nGTxX90dwWkO9TbXfao", BUILDING)}
    assert smallhouse.links(BOT + "hasStorey") == {(BUILDING, level1), (BUILDING, level2)}
    assert {s for s, _ in smallhouse.links(BOT + "hasSpace")} == {level1}
    assert len(smallhouse.links(BOT + "hasSpace")) == 3


def test_smallhouse_elements_are_contained_in_their_storeys(smallhouse: Graph) -> None:
    contained = smallhouse.links(BOT + "containsElement")
    by_storey = {s: sum(1 for z, _ in contained if z == s) for s, _ in contained}
    assert by_storey == {NS + "id/ifc/3dW-chZ2P2nBViVyTrDkFf": 15, NS + "id/ifc/3dW-chZ2P2nBViVyTrDk1e": 1}


def test_windows_and_doors_are_sub_elements_of_their_host_wall(smallhouse: Graph) -> None:
    hosted = {e for w, e in smallhouse.links(BOT + "hasSubElement") if w == WALL}
    assert hosted == {NS + "id/ifc/1Y9nGTxX90dwWkO9TbXfZr", NS + "id/ifc/1Y9nGTxX90dwWkO9TbXfXj"}
    assert all(IFC + "IfcWindow" in {t.value for t in smallhouse.objects(e, RDF_TYPE)} for e in hosted)


def test_spaces_are_adjacent_to_the_elements_bounding_them(smallhouse: Graph) -> None:
    adjacent = smallhouse.links(BOT + "adjacentElement")
    assert len(adjacent) == 25
    assert sum(1 for s, _ in adjacent if s == SPACE_1) == 9


def test_openings_are_not_published_as_elements(smallhouse: Graph) -> None:
    assert smallhouse.of_type(IFC + "IfcOpeningElement") == set()


def test_ifc2x3_class_is_kept_in_the_ifc4_namespace(smallhouse: Graph) -> None:
    assert {t.value for t in smallhouse.objects(WALL, RDF_TYPE)} == {
        BOT + "Element",
        IFC + "IfcWallStandardCase",
    }
    assert len(smallhouse.of_type(IFC + "IfcWindow")) == 5


def test_iri_is_the_global_id_with_dollar_written_as_dash(smallhouse: Graph) -> None:
    assert smallhouse.value(BUILDING, PROPS + "globalId") == ox.Literal("3dW$chZ2P2nBViVyUAoHql")
    assert BUILDING in smallhouse.of_type(BOT + "Building")


def test_name_becomes_the_label(smallhouse: Graph) -> None:
    assert smallhouse.value(SPACE_1, RDFS_LABEL) == ox.Literal("1")
    assert smallhouse.value(WALL, RDFS_LABEL) == ox.Literal("Basic Wall:Generic - 200mm:308830")


def test_smallhouse_windows_and_doors_have_their_u_values(smallhouse: Graph) -> None:
    u_values = {t.subject.value: t.object for t in smallhouse.triples if t.predicate.value == DSGO + "uValue"}
    windows, doors = smallhouse.of_type(IFC + "IfcWindow"), smallhouse.of_type(IFC + "IfcDoor")
    assert set(u_values) == windows | doors and len(u_values) == 8
    assert {u_values[w].value for w in windows} == {"3.6886"}
    assert {u_values[d].value for d in doors} == {"3.7021"}
    assert {u.datatype.value for u in u_values.values()} == {XSD + "decimal"}


def test_thermal_transmittance_is_a_quantity_in_watt_per_square_metre_kelvin(smallhouse: Graph) -> None:
    assert smallhouse.quantity(WINDOW, PROPS + "thermalTransmittance") == (
        "3.6886",
        XSD + "decimal",
        UNIT + "W-PER-M2-K",
    )


def test_millimetre_lengths_become_metres(smallhouse: Graph) -> None:
    assert smallhouse.quantity(WALL, PROPS + "length") == ("21", XSD + "decimal", UNIT + "M")
    assert smallhouse.quantity(SPACE_1, PROPS + "perimeter") == ("38.2", XSD + "decimal", UNIT + "M")


def test_areas_and_volumes_use_the_model_area_and_volume_units(smallhouse: Graph) -> None:
    # smallhouse measures lengths in mm but areas in m² and volumes in m³
    assert smallhouse.quantity(SPACE_1, PROPS + "area") == ("90.64", XSD + "decimal", UNIT + "M2")
    assert smallhouse.quantity(WALL, PROPS + "volume") == ("16.29022", XSD + "decimal", UNIT + "M3")


def test_property_values_are_typed(smallhouse: Graph) -> None:
    assert smallhouse.value(WALL, PROPS + "isExternal") == ox.Literal(
        "true", datatype=ox.NamedNode(XSD + "boolean")
    )
    assert smallhouse.value(WALL, PROPS + "roughness") == ox.Literal(
        "3", datatype=ox.NamedNode(XSD + "integer")
    )
    assert smallhouse.value(WALL, PROPS + "absorptance") == ox.Literal(
        "0.7", datatype=ox.NamedNode(XSD + "decimal")
    )
    assert smallhouse.value(WALL, PROPS + "function") == ox.Literal("Exterior")


def test_revit_property_names_become_safe_local_names(smallhouse: Graph) -> None:
    # "HeatTransferCoefficient(U)" in pset "Analytical Properties"
    assert smallhouse.value(WINDOW, PROPS + "heatTransferCoefficientU") == ox.Literal(
        "3.6886", datatype=ox.NamedNode(XSD + "decimal")
    )


@pytest.mark.parametrize(
    ("name", "local"),
    [
        ("IsExternal", "isExternal"),
        ("HeatTransferCoefficient(U)", "heatTransferCoefficientU"),
        ("Thermal Resistance (R)", "thermalResistanceR"),
        ("GSA BIM Area", "gsaBIMArea"),
        ("U-waarde", "uWaarde"),
        ("Höhe über Boden", "hoheUberBoden"),
        ("BAG_pand_id", "bagPandId"),
        ("€", "pe282ac"),
    ],
)
def test_property_name_is_camel_case_ascii(name: str, local: str) -> None:
    assert property_name(name) == local


def test_smallhouse_conforms_to_the_shapes(smallhouse: Graph) -> None:
    data = ox.serialize(smallhouse.triples, format=ox.RdfFormat.N_TRIPLES) or b""
    graph = rdflib.Graph().parse(data=data.decode(), format="nt")
    shapes = rdflib.Graph().parse(vocab_dir() / "shapes.ttl")
    conforms, _, report = validate(graph, shacl_graph=shapes)
    assert conforms, report


def test_u_value_is_a_declared_term_with_its_unit() -> None:
    terms = {
        (q.subject.value, q.predicate.value, q.object.value)
        for q in ox.parse(path=str(vocab_dir() / "dsgo.ttl"))
    }
    assert (DSGO + "uValue", QUDT + "unit", UNIT + "W-PER-M2-K") in terms
    assert (DSGO + "uValue", RDF_TYPE, "http://www.w3.org/2002/07/owl#DatatypeProperty") in terms


def test_two_walls_ifc2x3_in_metres_converts() -> None:
    graph = convert(FIXTURES / "TWO_WALLS.ifc")
    walls = graph.of_type(IFC + "IfcWallStandardCase")
    assert len(walls) == 2 and graph.of_type(BOT + "Element") == walls
    assert {graph.value(w, PROPS + "loadBearing").value for w in walls} == {"true"}
    assert {graph.value(w, RDFS_LABEL).value for w in walls} == {
        'Basic Wall:Generic - 8":277747',
        'Basic Wall:Generic - 8":277804',
    }
    assert len(graph.of_type(BOT + "Storey")) == 1


@pytest.fixture(scope="module")
def duplex() -> Graph:
    if not DUPLEX.is_file():
        pytest.skip(f"{DUPLEX} is not there (the model is not redistributed with the tests)")
    return convert(DUPLEX)


def test_duplex_ifc4_maps_its_spatial_structure(duplex: Graph) -> None:
    [building] = duplex.of_type(BOT + "Building")
    assert duplex.value(building, RDFS_LABEL) == ox.Literal("Duplex Apartment")
    assert len(duplex.of_type(BOT + "Storey")) == 4
    assert len(duplex.of_type(BOT + "Space")) == 21
    assert (len(duplex.of_type(IFC + "IfcWall")), len(duplex.of_type(IFC + "IfcFurniture"))) == (57, 61)


def test_duplex_has_no_u_values(duplex: Graph) -> None:
    assert not [t for t in duplex.triples if t.predicate.value == DSGO + "uValue"]


# -- models written with IfcOpenShell's API ----------------------------------------------


def write_model(
    path: Path,
    version: str = "IFC4",
    building_props: dict[str, Any] | None = None,
    buildings: int = 1,
) -> dict[str, str]:
    """A small model in mm with square-foot areas; returns GlobalIds by role."""
    run = ifcopenshell.api.run
    f = run("project.create_file", version=version)
    if version == "IFC2X3":  # its entities need an owner history: who made them, with what
        person, organisation = run("owner.add_person", f), run("owner.add_organisation", f)
        run("owner.add_person_and_organisation", f, person=person, organisation=organisation)
        run("owner.add_application", f)
    project = run("root.create_entity", f, ifc_class="IfcProject", name="Test")
    mm = run("unit.add_si_unit", f, unit_type="LENGTHUNIT", prefix="MILLI")
    sqft = run("unit.add_conversion_based_unit", f, name="square foot")
    run("unit.assign_unit", f, units=[mm, sqft])
    site = run("root.create_entity", f, ifc_class="IfcSite", name="Kavel 7")
    run("aggregate.assign_object", f, products=[site], relating_object=project)
    ids: dict[str, str] = {"site": site.GlobalId}
    for i in range(buildings):
        building = run("root.create_entity", f, ifc_class="IfcBuilding", name=f"Woning {i}")
        run("aggregate.assign_object", f, products=[building], relating_object=site)
        ids[f"building{i}" if i else "building"] = building.GlobalId
        if building_props:
            pset = run("pset.add_pset", f, product=building, name="DSGO")
            run("pset.edit_pset", f, pset=pset, properties=building_props)
    storey = run("root.create_entity", f, ifc_class="IfcBuildingStorey", name="Begane grond")
    run("aggregate.assign_object", f, products=[storey], relating_object=f.by_guid(ids["building"]))
    space = run("root.create_entity", f, ifc_class="IfcSpace", name="Woonkamer")
    run("aggregate.assign_object", f, products=[space], relating_object=storey)
    wall = run("root.create_entity", f, ifc_class="IfcWall", name="Gevel")
    run("spatial.assign_container", f, products=[wall], relating_structure=storey)
    pset = run("pset.add_pset", f, product=wall, name="Pset_WallCommon")
    run("pset.edit_pset", f, pset=pset, properties={"ThermalTransmittance": 0.25, "IsExternal": True})
    pset = run("pset.add_pset", f, product=wall, name="Afmetingen (intern)")
    run("pset.edit_pset", f, pset=pset, properties={"Dikte": f.createIfcLengthMeasure(300.0), "Lagen": 3})
    qto = run("pset.add_qto", f, product=wall, name="Qto_WallBaseQuantities")
    run("pset.edit_qto", f, qto=qto, properties={"Length": 5000.0, "NetSideArea": 100.0})
    roof = run("root.create_entity", f, ifc_class="IfcRoof", name="Dak")
    run("spatial.assign_container", f, products=[roof], relating_structure=storey)
    pset = run("pset.add_pset", f, product=roof, name="Pset_RoofCommon")
    run("pset.edit_pset", f, pset=pset, properties={"ThermalTransmittance": 0.16})
    ids |= {"storey": storey.GlobalId, "space": space.GlobalId, "wall": wall.GlobalId, "roof": roof.GlobalId}
    f.write(str(path))
    return ids


def iri(global_id: str) -> str:
    return NS + "id/ifc/" + global_id.replace("$", "-")


@pytest.mark.parametrize("version", ["IFC4", "IFC2X3", "IFC4X3"])
def test_model_written_with_the_api_converts_to_bot(tmp_path: Path, version: str) -> None:
    ids = write_model(tmp_path / "m.ifc", version)
    graph = convert(tmp_path / "m.ifc")
    assert graph.links(BOT + "hasStorey") == {(iri(ids["building"]), iri(ids["storey"]))}
    assert graph.links(BOT + "hasSpace") == {(iri(ids["storey"]), iri(ids["space"]))}
    assert graph.links(BOT + "containsElement") == {
        (iri(ids["storey"]), iri(ids["wall"])),
        (iri(ids["storey"]), iri(ids["roof"])),
    }


def test_wall_and_roof_u_values_come_from_their_common_psets(tmp_path: Path) -> None:
    ids = write_model(tmp_path / "m.ifc")
    graph = convert(tmp_path / "m.ifc")
    assert graph.value(iri(ids["wall"]), DSGO + "uValue").value == "0.25"
    assert graph.value(iri(ids["roof"]), DSGO + "uValue").value == "0.16"


def test_length_property_in_millimetres_is_converted_to_metres(tmp_path: Path) -> None:
    ids = write_model(tmp_path / "m.ifc")
    graph = convert(tmp_path / "m.ifc")
    assert graph.quantity(iri(ids["wall"]), PROPS + "dikte") == ("0.3", XSD + "decimal", UNIT + "M")
    assert graph.value(iri(ids["wall"]), PROPS + "lagen").value == "3"


def test_quantity_set_values_are_converted_with_the_project_units(tmp_path: Path) -> None:
    ids = write_model(tmp_path / "m.ifc")
    graph = convert(tmp_path / "m.ifc")
    assert graph.quantity(iri(ids["wall"]), PROPS + "length") == ("5", XSD + "decimal", UNIT + "M")
    # 100 square feet = 9.290304 m²
    assert graph.quantity(iri(ids["wall"]), PROPS + "netSideArea") == (
        "9.290304",
        XSD + "decimal",
        UNIT + "M2",
    )


# -- BAG ----------------------------------------------------------------------------------


def test_bag_pand_comes_from_a_building_property(tmp_path: Path) -> None:
    ids = write_model(tmp_path / "m.ifc", building_props={"BAGid": "0363100012345678"})
    model = IfcModel.make(tmp_path / "m.ifc", {}, ENV)
    graph = Graph(model.load())
    assert graph.value(iri(ids["building"]), DSGO + "bagPand") == ox.NamedNode(BAG_PAND + "0363100012345678")
    assert model.problems == []


def test_numeric_bag_id_gets_its_leading_zero_back(tmp_path: Path) -> None:
    ids = write_model(tmp_path / "m.ifc", building_props={"Bag pand-id": 363100012345678})
    graph = convert(tmp_path / "m.ifc")
    assert graph.value(iri(ids["building"]), DSGO + "bagPand") == ox.NamedNode(BAG_PAND + "0363100012345678")


def test_bag_pand_comes_from_the_source_configuration(tmp_path: Path) -> None:
    graph = convert(FIXTURES / "smallhouse.ifc", bag_pand="0599100000001234")
    assert graph.value(BUILDING, DSGO + "bagPand") == ox.NamedNode(BAG_PAND + "0599100000001234")


def test_configured_bag_pand_wins_and_the_difference_is_reported(tmp_path: Path) -> None:
    ids = write_model(tmp_path / "m.ifc", building_props={"BAGid": "0363100012345678"})
    model = IfcModel.make(tmp_path / "m.ifc", {"bag_pand": "0363100099999999"}, ENV)
    graph = Graph(model.load())
    assert graph.objects(iri(ids["building"]), DSGO + "bagPand") == [
        ox.NamedNode(BAG_PAND + "0363100099999999")
    ]
    [problem] = model.problems
    assert "the model says BAG pand 0363100012345678, the configuration 0363100099999999" in problem.reason
    assert problem.line is not None


def test_bag_id_that_is_not_16_digits_is_a_problem_not_a_link(tmp_path: Path) -> None:
    ids = write_model(tmp_path / "m.ifc", building_props={"BAGid": "0363-1000"})
    model = IfcModel.make(tmp_path / "m.ifc", {}, ENV)
    graph = Graph(model.load())
    assert graph.objects(iri(ids["building"]), DSGO + "bagPand") == []
    [problem] = model.problems
    assert problem.reason.endswith("property 'BAGid' = '0363-1000' is no BAG pand id (16 digits)")
    assert problem.source == str(tmp_path / "m.ifc")


def test_configured_bag_pand_is_refused_for_a_model_with_two_buildings(tmp_path: Path) -> None:
    write_model(tmp_path / "m.ifc", buildings=2)
    with pytest.raises(SourceError, match="bag_pand names one building, but the model has 2 IfcBuilding"):
        IfcModel.make(tmp_path / "m.ifc", {"bag_pand": "0363100012345678"}, ENV).load()


def test_ifc_source_takes_its_bag_pand_from_the_node_configuration(tmp_path: Path) -> None:
    sources = '[[source]]\nname = "huis"\ntype = "ifc"\npath = "huis.ifc"\nbag_pand = "0363100012345678"\n'
    settings = load_node_settings(write_node(tmp_path, sources=sources), {})
    [source] = settings.sources
    assert (source.kind, dict(source.options)) == ("ifc", {"bag_pand": "0363100012345678"})
    assert isinstance(KINDS["ifc"].make(source.path or Path(), source.options, ENV), IfcModel)


def test_bag_pand_option_must_be_16_digits(tmp_path: Path) -> None:
    sources = '[[source]]\nname = "huis"\ntype = "ifc"\npath = "huis.ifc"\nbag_pand = "363100012345678"\n'
    with pytest.raises(ConfigError) as err:
        load_node_settings(write_node(tmp_path, sources=sources), {})
    assert err.value.key == "source[0].bag_pand"
    assert "16 digits" in err.value.expected and "'363100012345678'" in err.value.expected


# -- bad input ----------------------------------------------------------------------------


def two_walls_text() -> bytes:
    return (FIXTURES / "TWO_WALLS.ifc").read_bytes()


def load_error(path: Path) -> SourceError:
    model = IfcModel.make(path, {}, ENV)
    with pytest.raises(SourceError) as err:
        model.load()
    assert err.value.source == str(path)
    assert str(err.value).startswith(str(path))
    return err.value


def test_truncated_file_is_refused_with_its_last_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.ifc"
    path.write_bytes(two_walls_text()[:3000])
    error = load_error(path)
    assert error.reason.startswith("truncated: the file does not end with END-ISO-10303-21;")
    assert error.line == two_walls_text()[:3000].count(b"\n") + 1


def test_corrupt_entity_is_refused_with_its_line(tmp_path: Path) -> None:
    lines = two_walls_text().split(b"\n")
    lines[59] = b"#999= IFCWALL(((((garbage"
    path = tmp_path / "corrupt.ifc"
    path.write_bytes(b"\n".join(lines))
    error = load_error(path)
    assert error.line == 60
    assert error.reason.startswith(
        "corrupt IFC file: Entity with name 'garbage#55' not found in schema 'IFC2X3'"
    )


def test_entities_that_do_not_fit_the_declared_schema_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ifc2x3-as-ifc4.ifc"
    path.write_bytes(two_walls_text().replace(b"FILE_SCHEMA(('IFC2X3'))", b"FILE_SCHEMA(('IFC4'))"))
    error = load_error(path)
    assert error.reason.startswith("corrupt IFC file: Expected 9 attribute values, found 8 for instance #202")
    assert error.line == 153


def test_unknown_schema_is_refused_naming_it_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "future.ifc"
    path.write_bytes(two_walls_text().replace(b"'IFC2X3'", b"'IFC9X9'"))
    error = load_error(path)
    assert error.reason == "unknown IFC schema 'IFC9X9'; IfcOpenShell reads IFC2X3, IFC4, IFC4X3_ADD2"
    assert error.line == 24


@pytest.mark.parametrize("content", [b"vbo_id,label\n1,A\n", b"", b"\x00\x01binary"])
def test_a_file_that_is_not_ifc_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "not.ifc"
    path.write_bytes(content)
    error = load_error(path)
    assert error.reason == "not an IFC file: it does not start with ISO-10303-21; (IFC-SPF is read)"
    assert error.line == 1


def test_a_step_file_without_a_project_is_refused(tmp_path: Path) -> None:
    text = two_walls_text()
    path = tmp_path / "bare.ifc"
    path.write_bytes(
        text[: text.index(b"DATA;") + 5]
        + b"\n#1=IFCCARTESIANPOINT((0.,0.,0.));\nENDSEC;\nEND-ISO-10303-21;\n"
    )
    assert load_error(path).reason == "not an IFC model: it has no IfcProject"


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    assert load_error(tmp_path / "gone.ifc").reason.startswith("cannot be read")


def test_error_while_converting_names_the_entity_and_returns_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Any, measure: Any, value: Any, unit: Any) -> None:
        raise RuntimeError("attribute type mismatch")

    monkeypatch.setattr(connectors.ifc._Converter, "_value", broken)
    error = load_error(FIXTURES / "TWO_WALLS.ifc")
    assert (
        "cannot be converted at #" in error.reason
        and "(IfcPropertySingleValue): attribute type mismatch" in error.reason
    )
    assert error.line is not None


def test_missing_ifcopenshell_asks_for_the_ifc_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ifcopenshell", None)
    error = load_error(FIXTURES / "TWO_WALLS.ifc")
    assert error.reason == "reading IFC models needs IfcOpenShell: install dsgo-gateway[ifc]"


def test_duplicate_global_ids_are_reported_and_published_as_one(tmp_path: Path) -> None:
    text = two_walls_text()
    path = tmp_path / "dup.ifc"
    path.write_bytes(text.replace(b"212thNVN51thzynFSw_BYL", b"212thNVN51thzynFSw_BbA"))
    model = IfcModel.make(path, {}, ENV)
    graph = Graph(model.load())
    assert len(graph.of_type(BOT + "Element")) == 1
    [problem] = model.problems
    assert "GlobalId 212thNVN51thzynFSw_BbA is used twice" in problem.reason and problem.line


def test_fingerprint_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.ifc"
    model = IfcModel.make(path, {}, ENV)
    assert model.fingerprint() == ""
    path.write_bytes(two_walls_text())
    first = model.fingerprint()
    path.write_bytes(two_walls_text() + b"\n")
    assert first and model.fingerprint() not in ("", first)
