"""An IFC model's materials and form, put together: the last phase of ``connectors.ifc``.

After the objects, relations and properties are converted, this phase finds each
element's material definition (its own, else its type's) and building, decides which
volumes the model states and which must come from its geometry (``ifc_geometry``: only
construction elements whose material parts need a volume, or whose building states no
height or footprint), and writes the parts (``ifc_materials``), the elements' volumes and
load-bearing, the storeys' elevations and the buildings' form (``ifc_structure``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pyoxigraph as ox

from connectors import ifc_geometry, ifc_materials, ifc_structure, terms
from connectors.terms import DSGO
from gateway.errors import SourceError

__all__ = ["Converted", "triples"]

_VOLUME = ox.NamedNode(DSGO + "volume")
_NONE: dict[tuple[str, str], Any] = {}


class Converted(Protocol):
    """What the converter of ``connectors.ifc`` knows once properties are done."""

    model: Any
    path: Path
    products: list[Any]
    kind: dict[int, str]  # entity id -> BOT class name
    iri: dict[int, ox.NamedNode]
    props: dict[int, dict[tuple[str, str], Any]]  # entity id -> (set, property) -> property
    problems: list[SourceError]
    at: Any  # the entity being converted, for errors

    def si(self, prop: Any) -> float | None: ...

    def length_scale(self) -> float: ...


def triples(model: Converted, table: ifc_materials.MaterialTable, geometry: bool) -> list[ox.Triple]:
    """Material parts, volumes and load-bearing of elements; storeys; buildings' form."""
    import ifcopenshell.util.element as get

    elements = [e for e in model.products if model.kind[e.id()] == "Element"]
    buildings = [p for p in model.products if model.kind[p.id()] == "Building"]
    building_of: dict[int, int] = {}
    definitions: dict[int, Any] = {}
    for entity in elements:
        model.at = entity
        building = get.get_parent(entity, "IfcBuilding")
        if building is not None:
            building_of[entity.id()] = building.id()
        definitions[entity.id()] = get.get_material(entity, should_inherit=True)
    model.at = None
    volumes = {e.id(): _quantity(model, e, ifc_materials.VOLUME_NAMES) for e in elements}
    shapes: dict[int, ifc_geometry.Shape] = {}
    if geometry:
        unstated = {  # buildings whose height or footprint must come from their elements
            b.id()
            for b in buildings
            if _quantity(model, b, ("Height",)) is None or _quantity(model, b, ("FootprintArea",)) is None
        }
        wanted = [
            e
            for e in elements
            if any(e.is_a(c) for c in ifc_geometry.GEOMETRY_CLASSES)
            and (
                (definitions[e.id()] is not None and volumes[e.id()] is None)
                or building_of.get(e.id()) in unstated
            )
        ]
        net = {
            e.id()
            for e in wanted
            if ifc_materials.needs_volume(
                definitions[e.id()], _quantity(model, e, ifc_materials.AREA_NAMES) is not None
            )
        }
        shapes, failed = ifc_geometry.shapes(model.model, wanted, net)
        if failed:
            reason = f"{failed} elements have no shape to mesh; their volumes stay unknown"
            model.problems.append(SourceError(model.path, reason))
    length = model.length_scale()
    writer = ifc_materials.PartWriter(table, length, ifc_materials.general_densities(model.model))
    out: list[ox.Triple] = []
    for entity in elements:
        model.at = entity
        iri, props = model.iri[entity.id()], model.props.get(entity.id(), _NONE)
        volume = volumes[entity.id()]
        if volume is None and entity.id() in shapes:
            volume = shapes[entity.id()].volume
        if volume is not None:
            out += terms.quantity(iri, _VOLUME, volume, "M3")
        area = _quantity(model, entity, ifc_materials.AREA_NAMES)
        out += writer.triples(iri, definitions[entity.id()], volume, area)
        out += ifc_structure.load_bearing(iri, props)
    model.at = None
    for storey in model.model.by_type("IfcBuildingStorey"):
        out += ifc_structure.storey_triples(storey, model.iri[storey.id()], length)
    for building in buildings:
        model.at = building
        mine = [e for e in elements if building_of.get(e.id()) == building.id()]
        out += _building(model, building, mine, shapes, length)
    model.at = None
    return out


def _quantity(model: Converted, entity: Any, names: tuple[str, ...]) -> float | None:
    return ifc_structure.quantity_named(model.props.get(entity.id(), _NONE), names, model.si)


def _building(
    model: Converted, building: Any, mine: list[Any], shapes: dict[int, ifc_geometry.Shape], length: float
) -> list[ox.Triple]:
    import ifcopenshell.util.placement

    storeys = sum(
        1
        for rel in building.IsDecomposedBy or ()
        for part in rel.RelatedObjects
        if part.is_a("IfcBuildingStorey")
    )
    base = 0.0
    if building.ObjectPlacement is not None:
        base = float(ifcopenshell.util.placement.get_local_placement(building.ObjectPlacement)[2][3]) * length
    meshed = [shapes[e.id()] for e in mine if e.id() in shapes]
    tops = [shape.top for shape in meshed]
    roofs = [e for e in mine if e.is_a("IfcRoof")]
    loose = [e for e in mine if e.is_a("IfcSlab") and getattr(e, "PredefinedType", None) == "ROOF"]
    return ifc_structure.building_triples(
        model.iri[building.id()],
        model.props.get(building.id(), _NONE),
        model.si,
        storeys,
        max(tops) - base if tops else None,
        ifc_geometry.footprint(meshed) if _quantity(model, building, ("FootprintArea",)) is None else None,
        ifc_structure.roof_types(roofs, loose, model.props),
    )
