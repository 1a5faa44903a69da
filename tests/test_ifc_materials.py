"""What IFC elements are made of, and the form of their buildings: a model written here with
IfcOpenShell's API (IFC4, millimetres) with known layers, quantities and storeys converts
to exactly what was built; the sample models convert with their materials; the material
table is the operator's to change."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ifcopenshell
import ifcopenshell.api
import numpy
import pyoxigraph as ox
import pytest
import rdflib
from pyshacl import validate

from connectors import KINDS, SourceEnv
from connectors.ifc import IfcModel
from connectors.ifc_materials import DEFAULT_TABLE, MaterialTable
from gateway.config import load_node_settings
from gateway.errors import ConfigError, SourceError
from gateway.vocab import DSGO, vocab_dir
from tests.conftest import write_node
from tests.test_ifc import FIXTURES, IFC, NS, RDF_TYPE, RDFS_LABEL, UNIT, XSD, Graph

ENV = SourceEnv(base_iri=NS)
ROOT = Path(__file__).resolve().parent.parent
#: the Duplex model is read where the project's shared data lies, never copied into the repository
DUPLEX = Path(os.environ.get("DSGO_SHARED_DATA", ROOT.parent / "shared" / "data")) / "Duplex_AJ.ifc"

#: the timber-frame wall's layers, outside in: (name, material, thickness in mm, category)
WALL_LAYERS = [
    ("gevelmetselwerk", "Baksteen waalformaat", 100.0, "mineral"),
    ("spouw", "Luchtspouw", 30.0, "unknown"),
    ("winddicht", "Houtvezel onderdakplaat", 22.0, "biobased"),
    ("isolatie", "Houtvezelisolatie", 160.0, "biobased"),
    ("stijlwerk", "OSB/3", 15.0, "biobased"),
    ("afwerking", "Gipskartonplaat", 12.5, "mineral"),
]
WALL_AREA = 12.0  # m², NetSideArea
#: the flat roof's build-up, top down
ROOF_LAYERS = [
    ("dakbedekking", "EPDM dakbedekking", 1.5, "fossil"),
    ("isolatie", "PIR isolatieplaat", 120.0, "fossil"),
    ("dampremmer", "PE folie", 0.2, "fossil"),
    ("constructie", "Kanaalplaat beton", 200.0, "mineral"),
]
ROOF_AREA = 50.0


def _quantities(run: Any, f: Any, product: Any, name: str, values: dict[str, float]) -> None:
    qto = run("pset.add_qto", f, product=product, name=name)
    run("pset.edit_qto", f, qto=qto, properties=values)


def _pset(run: Any, f: Any, product: Any, name: str, values: dict[str, Any]) -> None:
    pset = run("pset.add_pset", f, product=product, name=name)
    run("pset.edit_pset", f, pset=pset, properties=values)


def _layers(run: Any, f: Any, name: str, layers: list[tuple[str, str, float, str]]) -> Any:
    layer_set = run("material.add_material_set", f, name=name, set_type="IfcMaterialLayerSet")
    for layer_name, material_name, thickness, _ in layers:
        material = run("material.add_material", f, name=material_name)
        layer = run("material.add_layer", f, layer_set=layer_set, material=material)
        run(
            "material.edit_layer",
            f,
            layer=layer,
            attributes={"LayerThickness": thickness, "Name": layer_name},
        )
    return layer_set


def _opening(run: Any, f: Any, body: Any, wall: Any) -> None:
    """A 1 x 1 m hole through ``wall``, 2 m from its start and 1 m above its base."""
    opening = run("root.create_entity", f, ifc_class="IfcOpeningElement", name="Raamopening")
    shape = run("geometry.add_wall_representation", f, context=body, length=1.0, height=1.0, thickness=0.6)
    run("geometry.assign_representation", f, product=opening, representation=shape)
    placement = numpy.eye(4)
    placement[0][3], placement[1][3], placement[2][3] = 2.0, -0.1, 1.0
    run("geometry.edit_object_placement", f, product=opening, matrix=placement)
    run("feature.add_feature", f, feature=opening, element=wall)


def write_house(path: Path, *, geometry: bool = False, footprint: bool = True) -> dict[str, str]:
    """A two-storey house in mm: a timber-frame wall, a concrete floor, a flat roof and a
    window; with ``geometry`` the wall has a 5 x 2.8 m body with a 1 x 1 m opening and no
    quantities instead; without ``footprint`` the building states no FootprintArea."""
    run = ifcopenshell.api.run
    f = run("project.create_file", version="IFC4")
    project = run("root.create_entity", f, ifc_class="IfcProject", name="Woning")
    mm = run("unit.add_si_unit", f, unit_type="LENGTHUNIT", prefix="MILLI")
    run("unit.assign_unit", f, units=[mm, run("unit.add_si_unit", f, unit_type="AREAUNIT")])
    site = run("root.create_entity", f, ifc_class="IfcSite", name="Kavel")
    building = run("root.create_entity", f, ifc_class="IfcBuilding", name="Woning")
    ground = run("root.create_entity", f, ifc_class="IfcBuildingStorey", name="Begane grond")
    first = run("root.create_entity", f, ifc_class="IfcBuildingStorey", name="Verdieping")
    ground.Elevation, first.Elevation = 0.0, 2800.0
    run("aggregate.assign_object", f, products=[site], relating_object=project)
    run("aggregate.assign_object", f, products=[building], relating_object=site)
    run("aggregate.assign_object", f, products=[ground, first], relating_object=building)
    stated = {"Height": 6200.0, "FootprintArea": 48.0} if footprint else {"Height": 6200.0}
    _quantities(run, f, building, "Qto_BuildingBaseQuantities", stated)

    wall = run("root.create_entity", f, ifc_class="IfcWall", name="Voorgevel")
    run("material.assign_material", f, products=[wall], type="IfcMaterialLayerSet",
        material=_layers(run, f, "HSB-gevel", WALL_LAYERS))  # fmt: skip
    _pset(run, f, wall, "Pset_WallCommon", {"IsExternal": True, "LoadBearing": True})
    insulation = next(m for m in f.by_type("IfcMaterial") if m.Name == "Houtvezelisolatie")
    _pset(run, f, insulation, "Pset_MaterialCommon", {"MassDensity": 50.0})
    if geometry:
        context = run("context.add_context", f, context_type="Model")
        body = run("context.add_context", f, context_type="Model", context_identifier="Body",
                   target_view="MODEL_VIEW", parent=context)  # fmt: skip
        shape = run(
            "geometry.add_wall_representation", f, context=body, length=5.0, height=2.8, thickness=0.3395
        )
        run("geometry.assign_representation", f, product=wall, representation=shape)
        run("geometry.edit_object_placement", f, product=wall)
        _opening(run, f, body, wall)
    else:
        _quantities(run, f, wall, "Qto_WallBaseQuantities", {"NetSideArea": WALL_AREA})

    floor = run(
        "root.create_entity", f, ifc_class="IfcSlab", name="Verdiepingsvloer", predefined_type="FLOOR"
    )
    concrete = run("material.add_material", f, name="Beton C30/37", category="concrete")
    _pset(run, f, concrete, "Pset_MaterialCommon", {"MassDensity": 2400.0})
    run("material.assign_material", f, products=[floor], type="IfcMaterial", material=concrete)
    _pset(run, f, floor, "Pset_SlabCommon", {"LoadBearing": True, "IsExternal": False})
    _quantities(run, f, floor, "Qto_SlabBaseQuantities", {"NetVolume": 9.6, "NetArea": 48.0})

    roof = run("root.create_entity", f, ifc_class="IfcRoof", name="Plat dak", predefined_type="FLAT_ROOF")
    deck = run("root.create_entity", f, ifc_class="IfcSlab", name="Dakvloer", predefined_type="ROOF")
    run("aggregate.assign_object", f, products=[deck], relating_object=roof)
    run("material.assign_material", f, products=[deck], type="IfcMaterialLayerSet",
        material=_layers(run, f, "Plat dak warm", ROOF_LAYERS))  # fmt: skip
    _pset(run, f, deck, "Pset_SlabCommon", {"PitchAngle": 0.0, "LoadBearing": True})
    _quantities(run, f, deck, "Qto_SlabBaseQuantities", {"NetArea": ROOF_AREA})

    window = run("root.create_entity", f, ifc_class="IfcWindow", name="Raam")
    frame_and_glass = run("material.add_material_set", f, name="Kozijn", set_type="IfcMaterialConstituentSet")
    for name, material, fraction in (("kozijn", "Hardhout meranti", 0.3), ("beglazing", "HR++ glas", 0.7)):
        made = run("material.add_material", f, name=material)
        part = run("material.add_constituent", f, constituent_set=frame_and_glass, material=made)
        attributes = {"Name": name, "Fraction": fraction}
        run("material.edit_constituent", f, constituent=part, attributes=attributes, material=made)
    run(
        "material.assign_material",
        f,
        products=[window],
        type="IfcMaterialConstituentSet",
        material=frame_and_glass,
    )

    run("spatial.assign_container", f, products=[wall, floor, window], relating_structure=ground)
    run("spatial.assign_container", f, products=[roof], relating_structure=first)
    f.write(str(path))
    ids = {"building": building, "ground": ground, "first": first, "wall": wall, "floor": floor}
    ids |= {"roof": roof, "deck": deck, "window": window}
    return {role: NS + "id/ifc/" + e.GlobalId.replace("$", "-") for role, e in ids.items()}


class House:
    def __init__(self, graph: Graph, iris: dict[str, str]) -> None:
        self.graph, self.iris = graph, iris

    def parts(self, role: str) -> list[str]:
        found = [o.value for o in self.graph.objects(self.iris[role], DSGO + "hasMaterialPart")]
        return sorted(found, key=lambda iri: int(iri.rsplit("/", 1)[1]))

    def text(self, subject: str, predicate: str) -> str | None:
        found = self.graph.objects(subject, predicate)
        return found[0].value if found else None

    def number(self, subject: str, predicate: str, unit: str) -> str | None:
        if not self.graph.objects(subject, predicate):
            return None
        number, datatype, got_unit = self.graph.quantity(subject, predicate)
        assert (datatype, got_unit) == (XSD + "decimal", UNIT + unit)
        return number


@pytest.fixture(scope="module")
def house(tmp_path_factory: pytest.TempPathFactory) -> House:
    path = tmp_path_factory.mktemp("house") / "woning.ifc"
    iris = write_house(path)
    return House(Graph(IfcModel.make(path, {}, ENV).load()), iris)


# -- materials ----------------------------------------------------------------------------


def test_wall_layers_are_published_in_order_with_names_and_categories(house: House) -> None:
    parts = house.parts("wall")
    assert parts == [f"{house.iris['wall']}/material/{n}" for n in range(1, 7)]
    got = [
        (
            house.text(p, RDFS_LABEL),
            house.text(p, DSGO + "materialName"),
            house.text(p, DSGO + "materialCategory"),
        )
        for p in parts
    ]
    assert got == [(layer, material, category) for layer, material, _, category in WALL_LAYERS]
    assert [house.text(p, DSGO + "layerOrder") for p in parts] == ["1", "2", "3", "4", "5", "6"]


def test_layer_thickness_is_in_metres(house: House) -> None:
    thicknesses = [house.number(p, DSGO + "thickness", "M") for p in house.parts("wall")]
    assert thicknesses == ["0.1", "0.03", "0.022", "0.16", "0.015", "0.0125"]


def test_layer_volume_is_the_net_side_area_times_the_thickness(house: House) -> None:
    volumes = [house.number(p, DSGO + "volume", "M3") for p in house.parts("wall")]
    assert volumes == ["1.2", "0.36", "0.264", "1.92", "0.18", "0.15"]


def test_layers_are_typed_as_material_layers(house: House) -> None:
    for part in house.parts("wall"):
        assert {t.value for t in house.graph.objects(part, RDF_TYPE)} == {
            DSGO + "MaterialPart",
            DSGO + "MaterialLayer",
        }


def test_density_is_published_where_the_model_gives_it(house: House) -> None:
    insulation = house.parts("wall")[3]
    assert house.number(insulation, DSGO + "density", "KiloGM-PER-M3") == "50"
    assert house.number(house.parts("wall")[0], DSGO + "density", "KiloGM-PER-M3") is None


def test_single_material_floor_is_one_part_with_the_element_volume(house: House) -> None:
    [part] = house.parts("floor")
    assert {t.value for t in house.graph.objects(part, RDF_TYPE)} == {DSGO + "MaterialPart"}
    assert house.text(part, DSGO + "materialName") == "Beton C30/37"
    assert house.text(part, DSGO + "materialCategory") == "mineral"
    assert house.number(part, DSGO + "volume", "M3") == "9.6"
    assert house.number(part, DSGO + "density", "KiloGM-PER-M3") == "2400"
    assert house.number(house.iris["floor"], DSGO + "volume", "M3") == "9.6"


def test_flat_roof_build_up_is_published_layer_by_layer(house: House) -> None:
    parts = house.parts("deck")
    assert [house.text(p, DSGO + "materialCategory") for p in parts] == [c for *_, c in ROOF_LAYERS]
    assert [house.number(p, DSGO + "thickness", "M") for p in parts] == ["0.0015", "0.12", "0.0002", "0.2"]
    assert [house.number(p, DSGO + "volume", "M3") for p in parts] == ["0.075", "6", "0.01", "10"]


def test_constituents_keep_their_fractions_but_get_no_volume(house: House) -> None:
    parts = house.parts("window")
    assert [house.text(p, DSGO + "materialCategory") for p in parts] == ["biobased", "mineral"]
    assert [house.text(p, DSGO + "fraction") for p in parts] == ["0.3", "0.7"]
    assert all(
        DSGO + "MaterialConstituent" in {t.value for t in house.graph.objects(p, RDF_TYPE)} for p in parts
    )
    assert [house.number(p, DSGO + "volume", "M3") for p in parts] == [None, None]


def test_an_element_without_materials_has_no_parts(house: House) -> None:
    assert house.parts("roof") == []


# -- structure and form -------------------------------------------------------------------


def test_building_form_is_as_built(house: House) -> None:
    building = house.iris["building"]
    assert house.text(building, DSGO + "storeyCount") == "2"
    assert house.number(building, DSGO + "buildingHeight", "M") == "6.2"
    assert house.number(building, DSGO + "footprintArea", "M2") == "48"
    assert house.text(building, DSGO + "roofType") == "FLAT_ROOF"


def test_storey_elevations_are_in_metres(house: House) -> None:
    assert house.number(house.iris["ground"], DSGO + "elevation", "M") == "0"
    assert house.number(house.iris["first"], DSGO + "elevation", "M") == "2.8"


def test_load_bearing_comes_from_the_common_property_sets(house: House) -> None:
    assert house.graph.objects(house.iris["wall"], DSGO + "loadBearing") == [
        ox.Literal("true", datatype=ox.NamedNode(XSD + "boolean"))
    ]
    assert house.text(house.iris["floor"], DSGO + "loadBearing") == "true"
    assert house.graph.objects(house.iris["window"], DSGO + "loadBearing") == []


def test_published_materials_and_form_conform_to_the_shapes(house: House) -> None:
    graph = rdflib.Graph()
    graph.parse(data=ox.serialize(house.graph.triples, format=ox.RdfFormat.N_TRIPLES).decode(), format="nt")
    conforms, _, report = validate(graph, shacl_graph=rdflib.Graph().parse(vocab_dir() / "shapes.ttl"))
    assert conforms, report


def test_storey_count_the_model_states_wins_over_counting(tmp_path: Path) -> None:
    path = tmp_path / "woning.ifc"
    iris = write_house(path)
    f = ifcopenshell.open(str(path))
    _pset(ifcopenshell.api.run, f, f.by_type("IfcBuilding")[0], "Pset_BuildingCommon", {"NumberOfStoreys": 3})
    f.write(str(path))
    graph = Graph(IfcModel.make(path, {}, ENV).load())
    assert graph.value(iris["building"], DSGO + "storeyCount").value == "3"


# -- volumes from geometry --------------------------------------------------------------


def test_volume_the_model_does_not_state_is_computed_from_its_geometry(tmp_path: Path) -> None:
    path = tmp_path / "woning.ifc"
    iris = write_house(path, geometry=True)
    house = House(Graph(IfcModel.make(path, {}, ENV).load()), iris)
    assert house.number(iris["wall"], DSGO + "volume", "M3") == "4.4135"  # (5 x 2.8 - 1) x 0.3395 m
    insulation = house.parts("wall")[3]
    assert house.number(insulation, DSGO + "volume", "M3") == "2.08"  # 4.4135 x 0.16 / 0.3395


def test_footprint_the_model_does_not_state_is_its_elements_outline_seen_from_above(tmp_path: Path) -> None:
    path = tmp_path / "woning.ifc"
    iris = write_house(path, geometry=True, footprint=False)
    house = House(Graph(IfcModel.make(path, {}, ENV).load()), iris)
    assert house.number(iris["building"], DSGO + "footprintArea", "M2") == "1.6975"  # 5 x 0.3395 m


def test_footprint_the_model_states_wins_over_its_geometry(tmp_path: Path) -> None:
    path = tmp_path / "woning.ifc"
    iris = write_house(path, geometry=True)
    house = House(Graph(IfcModel.make(path, {}, ENV).load()), iris)
    assert house.number(iris["building"], DSGO + "footprintArea", "M2") == "48"


def test_a_holed_element_no_part_needs_the_volume_of_gets_none_rather_than_a_wrong_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "woning.ifc"
    iris = write_house(path, geometry=True)
    run, f = ifcopenshell.api.run, ifcopenshell.open(str(path))
    [wall] = f.by_type("IfcWall")
    mixed = run("material.add_material_set", f, name="Gemengd", set_type="IfcMaterialConstituentSet")
    for name in ("Baksteen", "Houtvezel"):
        run(
            "material.add_constituent",
            f,
            constituent_set=mixed,
            material=run("material.add_material", f, name=name),
        )
    run("material.assign_material", f, products=[wall], type="IfcMaterialConstituentSet", material=mixed)
    f.write(str(path))
    graph = Graph(IfcModel.make(path, {}, ENV).load())
    assert graph.objects(iris["wall"], DSGO + "volume") == []
    assert len(graph.objects(iris["wall"], DSGO + "hasMaterialPart")) == 2


def test_geometry_can_be_switched_off_leaving_volumes_unknown(tmp_path: Path) -> None:
    path = tmp_path / "woning.ifc"
    iris = write_house(path, geometry=True)
    house = House(Graph(IfcModel.make(path, {"geometry": False}, ENV).load()), iris)
    assert house.number(iris["wall"], DSGO + "volume", "M3") is None
    assert [house.number(p, DSGO + "volume", "M3") for p in house.parts("wall")] == [None] * 6


# -- the material table -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("Houtvezelisolatie", "biobased"),
        ("Hennep-kalkblok", "biobased"),
        ("Olifantsgras (miscanthus) plaat", "biobased"),
        ("Vlasisolatie", "biobased"),
        ("Gerecycled beton", "secondary"),
        ("Betongranulaat", "secondary"),
        ("Kalkzandsteen", "mineral"),
        ("Steenwol", "mineral"),
        ("Staal S235", "metal"),
        ("EPS 100", "fossil"),
        ("Bitumineuze dakbedekking", "fossil"),
        ("Textile - White", "unknown"),
        ("Insulation / Thermal Barriers - Rigid insulation", "unknown"),
        ("Steps", "unknown"),  # " eps " is a whole word: EPS, not steps
    ],
)
def test_default_table_sorts_materials_by_name(name: str, category: str) -> None:
    assert MaterialTable.load().category(name) == category


def test_the_ifc4_material_category_is_matched_too() -> None:
    assert MaterialTable.load().category("C30/37", "Concrete") == "mineral"


def test_operators_table_replaces_the_default(tmp_path: Path) -> None:
    table = tmp_path / "materials.toml"
    table.write_text('version = 1\n[[rule]]\ncategory = "secondary"\nmatch = ["baksteen"]\n')
    path = tmp_path / "woning.ifc"
    iris = write_house(path)
    graph = Graph(IfcModel.make(path, {"materials": str(table)}, ENV).load())
    parts = House(graph, iris).parts("wall")
    assert [graph.value(p, DSGO + "materialCategory").value for p in parts] == ["secondary"] + ["unknown"] * 5


def test_ifc_source_reads_its_material_table_relative_to_the_node_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_house(tmp_path / "data" / "woning.ifc")
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "ours.toml").write_text(
        'version = 1\n[[rule]]\ncategory = "metal"\nmatch = ["beton"]\n'
    )
    sources = (
        '[[source]]\nname = "model"\ntype = "ifc"\npath = "data/woning.ifc"\nmaterials = "tables/ours.toml"\n'
    )
    [source] = load_node_settings(write_node(tmp_path, sources=sources), {}).sources
    assert source.options["materials"] == tmp_path / "tables" / "ours.toml"
    assert source.path is not None
    model = KINDS["ifc"].make(source.path, source.options, ENV)
    categories = {t.object.value for t in model.load() if t.predicate.value == DSGO + "materialCategory"}
    assert categories == {"metal", "unknown"}


def test_materials_option_must_name_a_toml_file(tmp_path: Path) -> None:
    sources = '[[source]]\nname = "model"\ntype = "ifc"\npath = "data/woning.ifc"\nmaterials = 3\n'
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "woning.ifc").write_text("")
    with pytest.raises(ConfigError) as caught:
        load_node_settings(write_node(tmp_path, sources=sources), {})
    assert caught.value.code == "config_invalid" and "materials" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('version = 2\n[[rule]]\ncategory = "metal"\nmatch = ["x"]\n', "version = 1"),
        ('version = 1\n[[rule]]\ncategory = "wood"\nmatch = ["x"]\n', "category must be one of"),
        ('version = 1\n[[rule]]\ncategory = "metal"\nmatch = "staal"\n', "match must be a list"),
        ('version = 1\n[[rule]]\ncategory = "metal"\nmatch = ["x"]\ndensity = 7850\n', "the keys of a rule"),
        ("version = 1\n[[rule]\n", "not valid TOML"),
    ],
)
def test_a_bad_material_table_refuses_the_source_naming_the_table(
    tmp_path: Path, text: str, reason: str
) -> None:
    table = tmp_path / "materials.toml"
    table.write_text(text)
    with pytest.raises(SourceError) as caught:
        IfcModel.make(FIXTURES / "TWO_WALLS.ifc", {"materials": str(table)}, ENV).load()
    assert caught.value.code == "source_invalid" and reason in str(caught.value)
    assert str(table) in str(caught.value)


def test_a_changed_material_table_changes_the_fingerprint(tmp_path: Path) -> None:
    table = tmp_path / "materials.toml"
    table.write_text(DEFAULT_TABLE.read_text())
    model = IfcModel.make(FIXTURES / "TWO_WALLS.ifc", {"materials": str(table)}, ENV)
    before = model.fingerprint()
    table.write_text(DEFAULT_TABLE.read_text() + "\n")
    assert model.fingerprint() != before


# -- the sample models --------------------------------------------------------------------


def _materials(graph: Graph) -> dict[str, str]:
    return {
        graph.value(t.object.value, DSGO + "materialName").value: graph.value(
            t.object.value, DSGO + "materialCategory"
        ).value
        for t in graph.triples
        if t.predicate.value == DSGO + "hasMaterialPart"
        and graph.objects(t.object.value, DSGO + "materialName")
    }


def test_smallhouse_ifc2x3_walls_have_their_200_mm_layer_and_a_volume() -> None:
    graph = Graph(IfcModel.make(FIXTURES / "smallhouse.ifc", {}, ENV).load())
    wall = NS + "id/ifc/1Y9nGTxX90dwWkO9TbXfOF"
    [part] = [o.value for o in graph.objects(wall, DSGO + "hasMaterialPart")]
    assert graph.value(part, DSGO + "materialName").value == "Default Wall"
    assert graph.value(part, DSGO + "materialCategory").value == "unknown"
    assert graph.quantity(part, DSGO + "thickness") == ("0.2", XSD + "decimal", UNIT + "M")
    volume, _, unit = graph.quantity(part, DSGO + "volume")
    assert unit == UNIT + "M3" and volume == graph.quantity(wall, DSGO + "volume")[0]
    assert float(volume) == pytest.approx(16.29022, rel=1e-4)  # what Revit's own Dimensions set says
    assert _materials(graph)["Glass"] == "mineral"


def test_smallhouse_roof_of_sloping_slabs_is_pitched() -> None:
    graph = Graph(IfcModel.make(FIXTURES / "smallhouse.ifc", {}, ENV).load())
    [building] = graph.of_type("https://w3id.org/bot#Building")
    assert graph.value(building, DSGO + "roofType").value == "PITCHED_ROOF"
    assert graph.value(building, DSGO + "storeyCount").value == "2"
    assert [o.value for o in graph.objects(NS + "id/ifc/3dW-chZ2P2nBViVyTrDk1e", DSGO + "elevation")]


def test_two_walls_ifc2x3_in_metres_has_load_bearing_walls_with_volumes() -> None:
    graph = Graph(IfcModel.make(FIXTURES / "TWO_WALLS.ifc", {}, ENV).load())
    walls = graph.of_type(IFC + "IfcWallStandardCase")
    assert {graph.value(w, DSGO + "loadBearing").value for w in walls} == {"true"}
    volumes = sorted(float(graph.quantity(w, DSGO + "volume")[0]) for w in walls)
    assert volumes == [pytest.approx(1.946, abs=0.001), pytest.approx(2.754, abs=0.001)]


def test_two_walls_footprint_is_the_two_wall_profiles_side_by_side() -> None:
    graph = Graph(IfcModel.make(FIXTURES / "TWO_WALLS.ifc", {}, ENV).load())
    [building] = graph.of_type("https://w3id.org/bot#Building")
    area, _, unit = graph.quantity(building, DSGO + "footprintArea")
    assert unit == UNIT + "M2"
    assert float(area) == pytest.approx(4.1016 * 0.2032 + 2.8984 * 0.2032, abs=1e-6)  # the walls' profiles


@pytest.fixture(scope="module")
def duplex() -> Graph:
    if not DUPLEX.is_file():
        pytest.skip(f"{DUPLEX} is not there (the model is not redistributed with the tests)")
    return Graph(IfcModel.make(DUPLEX, {}, ENV).load())


def test_duplex_ifc4_materials_get_their_categories(duplex: Graph) -> None:
    materials = _materials(duplex)
    assert {name: materials[name] for name in (
        "Masonry - Brick", "Wood - Dimensional Lumber", "Metal - Stud Layer", "Roofing - EPDM Membrane",
        "Concrete - Cast In Situ", "Insulation / Thermal Barriers - Rigid insulation",
    )} == {
        "Masonry - Brick": "mineral",
        "Wood - Dimensional Lumber": "biobased",
        "Metal - Stud Layer": "metal",
        "Roofing - EPDM Membrane": "fossil",
        "Concrete - Cast In Situ": "mineral",
        "Insulation / Thermal Barriers - Rigid insulation": "unknown",
    }  # fmt: skip


def test_duplex_walls_of_several_constituents_give_their_parts_no_volume(duplex: Graph) -> None:
    walls = duplex.of_type(IFC + "IfcWall")
    with_parts = [w for w in walls if len(duplex.objects(w, DSGO + "hasMaterialPart")) == 6]
    assert with_parts
    for wall in with_parts:
        assert all(
            not duplex.objects(p.value, DSGO + "volume")
            for p in duplex.objects(wall, DSGO + "hasMaterialPart")
        )


def test_duplex_elements_get_volumes_from_their_geometry_except_holed_ones_no_part_needs(
    duplex: Graph,
) -> None:
    slabs = duplex.of_type(IFC + "IfcSlab")
    with_volume = [s for s in slabs if duplex.objects(s, DSGO + "volume")]
    assert len(with_volume) == len(slabs) - 1  # the one with openings is of six constituents
    walls = duplex.of_type(IFC + "IfcWall")
    assert 0 < sum(1 for w in walls if duplex.objects(w, DSGO + "volume")) < len(walls)


def test_duplex_form_flat_roof_four_storeys_and_its_height(duplex: Graph) -> None:
    [building] = duplex.of_type("https://w3id.org/bot#Building")
    assert duplex.value(building, DSGO + "roofType").value == "FLAT_ROOF"
    assert duplex.value(building, DSGO + "storeyCount").value == "4"  # Pset_BuildingCommon says so
    assert duplex.quantity(building, DSGO + "buildingHeight") == ("6.609", XSD + "decimal", UNIT + "M")
    area, _, unit = duplex.quantity(building, DSGO + "footprintArea")  # none stated: from its outlines
    assert unit == UNIT + "M2" and float(area) == pytest.approx(217.76, abs=0.01)


def test_duplex_conforms_to_the_shapes(duplex: Graph) -> None:
    graph = rdflib.Graph()
    graph.parse(data=ox.serialize(duplex.triples, format=ox.RdfFormat.N_TRIPLES).decode(), format="nt")
    conforms, _, report = validate(graph, shacl_graph=rdflib.Graph().parse(vocab_dir() / "shapes.ttl"))
    assert conforms, report
