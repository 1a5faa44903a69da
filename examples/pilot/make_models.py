"""Write the construction firm's IFC models of the pilot (examples/pilot/firm/models/).

Bouwbedrijf De Vries surveyed five of the housing corporation's homes before their
renovation and modelled each as it stands: one IfcBuilding (its BAG pand in the
``Pandidentificatie`` property, its height and footprint in Qto_BuildingBaseQuantities),
its storeys with their elevations, the roof (its IfcRoof type: gable or flat), the
facades, the party wall and the floors with their build-up (IfcMaterialLayerSet, layer by
layer with thickness), their net areas (Qto_*BaseQuantities), whether they are
load-bearing, their thermal resistance (Rc, ``NL_Thermal.ThermalResistance``) and
transmittance (U), and the windows with their frame and glass and their U-value. The
renovation's cost and planned delivery are in the building's ``DeVries_Project`` set: the
firm's own business, which its policy shares with no one.

Two kinds of home: the 1958 terraced houses of the Zaaiersweg (two storeys under a gable
roof on timber rafters, brick cavity facades, a timber first floor on load-bearing
calcium-silicate party walls) and the 1962-1965 three-storey blocks of the Hugo de
Vrieslaan and the Keizer Karelweg (concrete walls and floors under a flat roof). Some were
insulated since, with cork, glass wool, EPS, cellulose or wood fibre. The numbers are
synthetic but consistent: a layer's volume is its element's area times its thickness.

The models carry no geometry, so each is a few tens of KB. GlobalIds are derived from the
home and the element's role (UUID 5), and the header is fixed, so running this again
writes the same files:

    .venv/bin/python examples/pilot/make_models.py [FOLDER]
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ifcopenshell
import ifcopenshell.api.aggregate
import ifcopenshell.api.material
import ifcopenshell.api.project
import ifcopenshell.api.pset
import ifcopenshell.api.root
import ifcopenshell.api.spatial
import ifcopenshell.api.unit
import ifcopenshell.guid

__all__ = ["HOMES", "Home", "Kind", "building_global_id", "global_id", "main", "write_models"]

FOLDER = Path(__file__).resolve().parent / "firm" / "models"
_NAMESPACE = uuid.UUID("0d5a6c1e-9b1f-4c1e-8f57-6e0d2f3a7b01")  # the pilot's own, fixed
_TIMESTAMP = "2025-03-14T09:00:00+01:00"
_OPS = "Bouwbedrijf De Vries B.V."
_ROLES = (
    "project", "site", "building", "storey-0", "storey-1", "storey-2", "facade-front", "facade-back",
    "party-wall", "window-front", "window-back", "roof", "floor-0", "floor-1", "floor-2",
)  # fmt: skip

#: a build-up, outside (or top) first: (material name, thickness in m)
Layers = tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class Kind:
    """What the homes of one street have in common: their shape and structure."""

    storeys: int
    storey_height: float  # m
    height: float  # m, the top of the roof above the ground floor
    footprint: float  # m²
    roof_type: str  # IfcRoofTypeEnum
    roof_area: float  # m²
    facade_area: float  # m², each of the two facades, windows excluded
    party_wall_area: float
    party_wall: Layers
    party_wall_bears: bool
    facades_bear: bool
    upper_floor: Layers
    window: tuple[str, str]  # frame, glass


@dataclass(frozen=True, slots=True)
class Home:
    address: str  # street and number
    town: str
    bag_pand: str  # 16 digits
    rc_roof: float  # m2.K/W
    rc_facade: float
    rc_floor: float
    u_window: float  # W/(m2.K)
    cost: float  # euro, excluding VAT
    delivery: str  # planned delivery date, yyyy-mm-dd
    kind: Kind
    roof: Layers
    facade: Layers
    ground_floor: Layers

    @property
    def slug(self) -> str:
        """The file name: models/{slug}.ifc."""
        return self.address.lower().replace(" ", "-")

    @property
    def site(self) -> str:
        return f"{self.address.rstrip('0123456789 ')}, {self.town}"


TERRACED_1958 = Kind(
    storeys=2,
    storey_height=2.8,
    height=8.6,
    footprint=45.9,
    roof_type="GABLE_ROOF",
    roof_area=56.2,
    facade_area=26.0,
    party_wall_area=47.6,
    party_wall=(("Kalkzandsteen", 0.2),),
    party_wall_bears=True,
    facades_bear=False,
    upper_floor=(("Vurenhouten vloerdelen", 0.022), ("Gipsplaat plafond", 0.0095)),
    window=("Vurenhouten kozijn", "Dubbel glas"),
)
BLOCK_1965 = Kind(
    storeys=3,
    storey_height=2.7,
    height=8.4,
    footprint=54.0,
    roof_type="FLAT_ROOF",
    roof_area=54.0,
    facade_area=42.6,
    party_wall_area=72.9,
    party_wall=(("Beton gestort", 0.18),),
    party_wall_bears=True,
    facades_bear=True,
    upper_floor=(("Anhydriet dekvloer", 0.05), ("Beton breedplaatvloer", 0.2)),
    window=("Meranti hardhouten kozijn", "HR++ glas"),
)
_BRICK, _CAVITY = ("Baksteen", 0.1), ("Luchtspouw", 0.05)

HOMES = (
    Home(
        "Zaaiersweg 12", "Amsterdam", "0363100012000001", 1.3, 0.36, 0.15, 2.8, 48500, "2027-04-30",
        TERRACED_1958,
        roof=(("Keramische dakpannen", 0.02), ("Vurenhouten dakbeschot", 0.018), ("Glaswol", 0.05)),
        facade=(_BRICK, _CAVITY, ("Kalkzandsteen", 0.1)),
        ground_floor=(("Beton ribcassettevloer", 0.16),),
    ),
    Home(
        "Zaaiersweg 14", "Amsterdam", "0363100012000002", 2.5, 0.36, 1.7, 1.8, 39900, "2027-05-31",
        TERRACED_1958,
        roof=(("Keramische dakpannen", 0.02), ("Vurenhouten dakbeschot", 0.018), ("Glaswol", 0.1)),
        facade=(_BRICK, _CAVITY, ("Kalkzandsteen", 0.1)),
        ground_floor=(("Beton ribcassettevloer", 0.16), ("EPS isolatieplaat", 0.06)),
    ),
    Home(
        "Hugo de Vrieslaan 7", "Amsterdam", "0363100012000003", 0.4, 0.19, 0.15, 5.1, 61200, "2026-10-30",
        BLOCK_1965,
        roof=(("Bitumineuze dakbedekking", 0.008), ("Kurkplaat", 0.02), ("Beton dakvloer", 0.2)),
        facade=(_BRICK, ("Luchtspouw", 0.04), ("Beton gestort", 0.15)),
        ground_floor=(("Beton kanaalplaatvloer", 0.2),),
    ),
    Home(
        "Hugo de Vrieslaan 9", "Amsterdam", "0363100012000004", 3.7, 1.3, 3.5, 1.2, 32000, "2029-03-29",
        BLOCK_1965,
        roof=(("EPDM dakbedekking", 0.0015), ("Houtvezel dakisolatieplaat", 0.14), ("Beton dakvloer", 0.2)),
        facade=(_BRICK, ("Cellulose spouwvulling", 0.04), ("Beton gestort", 0.15)),
        ground_floor=(("Beton kanaalplaatvloer", 0.2), ("Vlasvezel isolatie", 0.12)),
    ),
    Home(
        "Keizer Karelweg 210", "Amstelveen", "0362100004000007", 1.3, 0.36, 0.15, 2.9, 45000, "2028-06-30",
        BLOCK_1965,
        roof=(("Bitumineuze dakbedekking", 0.008), ("EPS isolatieplaat", 0.04), ("Beton dakvloer", 0.2)),
        facade=(_BRICK, _CAVITY, ("Beton gestort", 0.15)),
        ground_floor=(("Zandcementdekvloer met betongranulaat", 0.05), ("Beton kanaalplaatvloer", 0.2)),
    ),
)  # fmt: skip


def global_id(home: Home, role: str) -> str:
    """A stable 22-character IFC GlobalId for one object of one home."""
    return str(ifcopenshell.guid.compress(uuid.uuid5(_NAMESPACE, f"{home.slug}/{role}").hex))


def building_global_id(home: Home) -> str:
    return global_id(home, "building")


def _u(rc: float) -> float:
    """U of a construction from its Rc, with the NTA 8800 surface resistances (0.13 + 0.04)."""
    return round(1 / (rc + 0.17), 2)


def _entity(model: Any, home: Home, role: str, ifc_class: str, name: str, **kw: Any) -> Any:
    entity = ifcopenshell.api.root.create_entity(model, ifc_class=ifc_class, name=name, **kw)
    entity.GlobalId = global_id(home, role)
    return entity


def _pset(model: Any, product: Any, name: str, properties: dict[str, Any]) -> None:
    pset = ifcopenshell.api.pset.add_pset(model, product=product, name=name)
    ifcopenshell.api.pset.edit_pset(model, pset=pset, properties=properties)


def _qto(model: Any, product: Any, name: str, quantities: dict[str, float]) -> None:
    qto = ifcopenshell.api.pset.add_qto(model, product=product, name=name)
    ifcopenshell.api.pset.edit_qto(model, qto=qto, properties=quantities)


def _rc(model: Any, value: float) -> Any:
    return model.create_entity("IfcThermalResistanceMeasure", value)


class _Materials:
    """One model's materials, each made once and shared by the layers that use it."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.made: dict[str, Any] = {}

    def material(self, name: str) -> Any:
        if name not in self.made:
            self.made[name] = ifcopenshell.api.material.add_material(self.model, name=name)
        return self.made[name]

    def layers(self, products: list[Any], name: str, build_up: Layers) -> None:
        layer_set = ifcopenshell.api.material.add_material_set(
            self.model, name=name, set_type="IfcMaterialLayerSet"
        )
        for material, thickness in build_up:
            layer = ifcopenshell.api.material.add_layer(
                self.model, layer_set=layer_set, material=self.material(material)
            )
            ifcopenshell.api.material.edit_layer(
                self.model, layer=layer, attributes={"LayerThickness": thickness}
            )
        ifcopenshell.api.material.assign_material(
            self.model, products=products, type="IfcMaterialLayerSet", material=layer_set
        )

    def constituents(self, products: list[Any], name: str, materials: tuple[str, ...]) -> None:
        constituent_set = ifcopenshell.api.material.add_material_set(
            self.model, name=name, set_type="IfcMaterialConstituentSet"
        )
        for material in materials:
            ifcopenshell.api.material.add_constituent(
                self.model, constituent_set=constituent_set, material=self.material(material)
            )
        ifcopenshell.api.material.assign_material(
            self.model, products=products, type="IfcMaterialConstituentSet", material=constituent_set
        )


def model_of(home: Home) -> Any:
    """One home's survey model (IFC4, metres)."""
    kind = home.kind
    model = ifcopenshell.api.project.create_file(version="IFC4")
    header = model.header.file_name
    header.name, header.time_stamp = f"{home.slug}.ifc", _TIMESTAMP
    header.author, header.organization = ("Afdeling Werkvoorbereiding",), (_OPS,)
    project = _entity(model, home, "project", "IfcProject", f"Renovatie-opname {home.address}")
    ifcopenshell.api.unit.assign_unit(model, length={"is_metric": True, "raw": "METERS"})
    site = _entity(model, home, "site", "IfcSite", home.site)
    building = _entity(model, home, "building", "IfcBuilding", home.address)
    names = ("Begane grond", "Eerste verdieping", "Tweede verdieping")
    storeys = [
        _entity(model, home, f"storey-{i}", "IfcBuildingStorey", names[i]) for i in range(kind.storeys)
    ]
    for i, storey in enumerate(storeys):
        storey.Elevation = round(i * kind.storey_height, 3)
    ifcopenshell.api.aggregate.assign_object(model, products=[site], relating_object=project)
    ifcopenshell.api.aggregate.assign_object(model, products=[building], relating_object=site)
    ifcopenshell.api.aggregate.assign_object(model, products=storeys, relating_object=building)
    _pset(model, building, "NL_BAG", {"Pandidentificatie": home.bag_pand})
    _qto(
        model,
        building,
        "Qto_BuildingBaseQuantities",
        {"Height": kind.height, "FootprintArea": kind.footprint},
    )
    _pset(
        model,
        building,
        "DeVries_Project",
        {
            "ConstructionCost": model.create_entity("IfcMonetaryMeasure", home.cost),
            "PlannedDelivery": model.create_entity("IfcDate", home.delivery),
        },
    )
    materials = _Materials(model)

    walls = []
    for role, name in (("facade-front", "Voorgevel"), ("facade-back", "Achtergevel")):
        wall = _entity(model, home, role, "IfcWall", name)
        _pset(
            model,
            wall,
            "Pset_WallCommon",
            {
                "IsExternal": True,
                "LoadBearing": kind.facades_bear,
                "ThermalTransmittance": _u(home.rc_facade),
            },
        )
        _pset(model, wall, "NL_Thermal", {"ThermalResistance": _rc(model, home.rc_facade)})
        _qto(model, wall, "Qto_WallBaseQuantities", {"NetSideArea": kind.facade_area})
        walls.append(wall)
    materials.layers(walls, "Gevel", home.facade)
    party_wall = _entity(model, home, "party-wall", "IfcWall", "Woningscheidende wand")
    _pset(model, party_wall, "Pset_WallCommon", {"IsExternal": False, "LoadBearing": kind.party_wall_bears})
    _qto(model, party_wall, "Qto_WallBaseQuantities", {"NetSideArea": kind.party_wall_area})
    materials.layers([party_wall], "Woningscheidende wand", kind.party_wall)

    floors = []
    for i in range(kind.storeys):
        name = "Begane grondvloer" if i == 0 else f"Verdiepingsvloer {i}"
        floor = _entity(model, home, f"floor-{i}", "IfcSlab", name, predefined_type="FLOOR")
        common: dict[str, Any] = {"IsExternal": i == 0, "LoadBearing": True}
        _pset(model, floor, "Pset_SlabCommon", common)
        if i == 0:
            _pset(model, floor, "NL_Thermal", {"ThermalResistance": _rc(model, home.rc_floor)})
        _qto(model, floor, "Qto_SlabBaseQuantities", {"NetArea": kind.footprint})
        floors.append(floor)
    materials.layers(floors[:1], "Begane grondvloer", home.ground_floor)
    materials.layers(floors[1:], "Verdiepingsvloer", kind.upper_floor)

    windows = []
    for role, name in (("window-front", "Raam voorgevel"), ("window-back", "Raam achtergevel")):
        window = _entity(model, home, role, "IfcWindow", name)
        _pset(model, window, "Pset_WindowCommon", {"IsExternal": True, "ThermalTransmittance": home.u_window})
        windows.append(window)
    materials.constituents(windows, "Raam", kind.window)
    roof = _entity(model, home, "roof", "IfcRoof", "Dak", predefined_type=kind.roof_type)
    _pset(model, roof, "Pset_RoofCommon", {"IsExternal": True, "ThermalTransmittance": _u(home.rc_roof)})
    _pset(model, roof, "NL_Thermal", {"ThermalResistance": _rc(model, home.rc_roof)})
    _qto(model, roof, "Qto_RoofBaseQuantities", {"NetArea": kind.roof_area})
    materials.layers([roof], "Dak", home.roof)
    for i, floor in enumerate(floors):
        ifcopenshell.api.spatial.assign_container(model, products=[floor], relating_structure=storeys[i])
    ifcopenshell.api.spatial.assign_container(
        model, products=[*walls, party_wall, *windows], relating_structure=storeys[0]
    )
    ifcopenshell.api.spatial.assign_container(model, products=[roof], relating_structure=storeys[-1])
    _settle(model, home)
    return model


def _settle(model: Any, home: Home) -> None:
    """Make the file reproducible: the API gives relationships and property sets random
    GlobalIds and lists related objects and units in set order; derive and sort them."""
    named = {global_id(home, role) for role in _ROLES}
    for entity in model.by_type("IfcRoot"):
        if entity.GlobalId not in named:
            entity.GlobalId = global_id(home, f"#{entity.id()}")
    for rel in model.by_type("IfcRelContainedInSpatialStructure"):
        rel.RelatedElements = sorted(rel.RelatedElements, key=lambda e: e.id())
    for rel in model.by_type("IfcRelAggregates"):
        rel.RelatedObjects = sorted(rel.RelatedObjects, key=lambda e: e.id())
    for rel in model.by_type("IfcRelAssociatesMaterial"):
        rel.RelatedObjects = sorted(rel.RelatedObjects, key=lambda e: e.id())
    for assignment in model.by_type("IfcUnitAssignment"):
        assignment.Units = sorted(assignment.Units, key=lambda e: e.id())


def write_models(folder: Path = FOLDER) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for home in HOMES:
        path = folder / f"{home.slug}.ifc"
        model_of(home).write(str(path))
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    for path in write_models(Path(argv[0]) if argv else FOLDER):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
