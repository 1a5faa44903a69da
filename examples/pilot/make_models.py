"""Write the construction firm's IFC models of the pilot (examples/pilot/firm/models/).

Bouwbedrijf De Vries surveyed five of the housing corporation's homes before their
renovation and modelled each as it stands: one IfcBuilding (its BAG pand in the
``Pandidentificatie`` property), two storeys, the roof and the walls with their thermal
resistance (Rc, ``NL_Thermal.ThermalResistance``) and transmittance (U), and the windows
with their U-value. The renovation's cost and planned delivery are in the building's
``DeVries_Project`` set: the firm's own business, which its policy shares with no one.

The models carry no geometry, so each is a few KB. GlobalIds are derived from the
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
import ifcopenshell.api.project
import ifcopenshell.api.pset
import ifcopenshell.api.root
import ifcopenshell.api.spatial
import ifcopenshell.api.unit
import ifcopenshell.guid

__all__ = ["HOMES", "Home", "building_global_id", "global_id", "main", "write_models"]

FOLDER = Path(__file__).resolve().parent / "firm" / "models"
_NAMESPACE = uuid.UUID("0d5a6c1e-9b1f-4c1e-8f57-6e0d2f3a7b01")  # the pilot's own, fixed
_TIMESTAMP = "2025-03-14T09:00:00+01:00"
_OPS = "Bouwbedrijf De Vries B.V."
_ROLES = (
    "project", "site", "building", "storey-0", "storey-1", "facade-front", "facade-back",
    "party-wall", "window-front", "window-back", "roof",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Home:
    address: str  # street and number
    town: str
    bag_pand: str  # 16 digits
    rc_roof: float  # m2.K/W
    rc_facade: float
    u_window: float  # W/(m2.K)
    cost: float  # euro, excluding VAT
    delivery: str  # planned delivery date, yyyy-mm-dd

    @property
    def slug(self) -> str:
        """The file name: models/{slug}.ifc."""
        return self.address.lower().replace(" ", "-")

    @property
    def site(self) -> str:
        return f"{self.address.rstrip('0123456789 ')}, {self.town}"


HOMES = (
    Home("Zaaiersweg 12", "Amsterdam", "0363100012000001", 1.3, 0.36, 2.8, 48500, "2027-04-30"),
    Home("Zaaiersweg 14", "Amsterdam", "0363100012000002", 2.5, 0.36, 1.8, 39900, "2027-05-31"),
    Home("Hugo de Vrieslaan 7", "Amsterdam", "0363100012000003", 0.4, 0.19, 5.1, 61200, "2026-10-30"),
    Home("Hugo de Vrieslaan 9", "Amsterdam", "0363100012000004", 2.5, 1.3, 1.8, 32000, "2029-03-29"),
    Home("Keizer Karelweg 210", "Amstelveen", "0362100004000007", 1.3, 0.36, 2.9, 45000, "2028-06-30"),
)


def global_id(home: Home, role: str) -> str:
    """A stable 22-character IFC GlobalId for one object of one home."""
    return str(ifcopenshell.guid.compress(uuid.uuid5(_NAMESPACE, f"{home.slug}/{role}").hex))


def building_global_id(home: Home) -> str:
    return global_id(home, "building")


def _u(rc: float) -> float:
    """U of a construction from its Rc, with the NTA 8800 surface resistances (0.13 + 0.04)."""
    return round(1 / (rc + 0.17), 2)


def _entity(model: Any, home: Home, role: str, ifc_class: str, name: str) -> Any:
    entity = ifcopenshell.api.root.create_entity(model, ifc_class=ifc_class, name=name)
    entity.GlobalId = global_id(home, role)
    return entity


def _pset(model: Any, product: Any, name: str, properties: dict[str, Any]) -> None:
    pset = ifcopenshell.api.pset.add_pset(model, product=product, name=name)
    ifcopenshell.api.pset.edit_pset(model, pset=pset, properties=properties)


def _rc(model: Any, value: float) -> Any:
    return model.create_entity("IfcThermalResistanceMeasure", value)


def model_of(home: Home) -> Any:
    """One home's survey model (IFC4, metres)."""
    model = ifcopenshell.api.project.create_file(version="IFC4")
    header = model.header.file_name
    header.name, header.time_stamp = f"{home.slug}.ifc", _TIMESTAMP
    header.author, header.organization = ("Afdeling Werkvoorbereiding",), (_OPS,)
    project = _entity(model, home, "project", "IfcProject", f"Renovatie-opname {home.address}")
    ifcopenshell.api.unit.assign_unit(model, length={"is_metric": True, "raw": "METERS"})
    site = _entity(model, home, "site", "IfcSite", home.site)
    building = _entity(model, home, "building", "IfcBuilding", home.address)
    ground = _entity(model, home, "storey-0", "IfcBuildingStorey", "Begane grond")
    first = _entity(model, home, "storey-1", "IfcBuildingStorey", "Eerste verdieping")
    ground.Elevation, first.Elevation = 0.0, 2.8
    ifcopenshell.api.aggregate.assign_object(model, products=[site], relating_object=project)
    ifcopenshell.api.aggregate.assign_object(model, products=[building], relating_object=site)
    ifcopenshell.api.aggregate.assign_object(model, products=[ground, first], relating_object=building)
    _pset(model, building, "NL_BAG", {"Pandidentificatie": home.bag_pand})
    _pset(
        model,
        building,
        "DeVries_Project",
        {
            "ConstructionCost": model.create_entity("IfcMonetaryMeasure", home.cost),
            "PlannedDelivery": model.create_entity("IfcDate", home.delivery),
        },
    )

    walls = []
    for role, name in (("facade-front", "Voorgevel"), ("facade-back", "Achtergevel")):
        wall = _entity(model, home, role, "IfcWall", name)
        _pset(
            model, wall, "Pset_WallCommon", {"IsExternal": True, "ThermalTransmittance": _u(home.rc_facade)}
        )
        _pset(model, wall, "NL_Thermal", {"ThermalResistance": _rc(model, home.rc_facade)})
        walls.append(wall)
    party_wall = _entity(model, home, "party-wall", "IfcWall", "Woningscheidende wand")
    _pset(model, party_wall, "Pset_WallCommon", {"IsExternal": False})
    windows = []
    for role, name in (("window-front", "Raam voorgevel"), ("window-back", "Raam achtergevel")):
        window = _entity(model, home, role, "IfcWindow", name)
        _pset(model, window, "Pset_WindowCommon", {"IsExternal": True, "ThermalTransmittance": home.u_window})
        windows.append(window)
    roof = _entity(model, home, "roof", "IfcRoof", "Dak")
    _pset(model, roof, "Pset_RoofCommon", {"IsExternal": True, "ThermalTransmittance": _u(home.rc_roof)})
    _pset(model, roof, "NL_Thermal", {"ThermalResistance": _rc(model, home.rc_roof)})
    ifcopenshell.api.spatial.assign_container(
        model, products=[*walls, party_wall, *windows], relating_structure=ground
    )
    ifcopenshell.api.spatial.assign_container(model, products=[roof], relating_structure=first)
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
