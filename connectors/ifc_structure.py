"""Structure and form of an IFC building: what a question about adding storeys needs.

On each ``bot:Building``:

- ``dsgo:storeyCount``: ``Pset_BuildingCommon.NumberOfStoreys`` where the model states it,
  else the number of IfcBuildingStorey the building aggregates;
- ``dsgo:buildingHeight`` (m): ``Height`` of its quantity set (Qto_BuildingBaseQuantities),
  else, where the geometry was meshed, the highest point of its construction elements
  above the building's own placement;
- ``dsgo:footprintArea`` (m²): ``FootprintArea`` of its quantity set, else, where the
  geometry was meshed, the area of the union of its construction elements' outlines seen
  from above (``ifc_geometry.footprint``: overhangs included, as the BAG draws a pand);
- ``dsgo:roofType``: the ``PredefinedType`` (IFC4) or ``ShapeType`` (IFC2X3) of its
  IfcRoof, as IFC spells it (``FLAT_ROOF``, ``GABLE_ROOF``, ``HIP_ROOF``, ...); where that
  is NOTDEFINED or USERDEFINED, the slopes of the roof's slabs (the IfcSlab the roof
  aggregates, or the building's IfcSlab of type ROOF), from ``Pset_SlabCommon.PitchAngle``:
  all 0 is ``FLAT_ROOF``, any other ``PITCHED_ROOF`` (the project's own value: a sloping
  roof of a shape the model does not name). No roof, or no pitch given: no roof type.

On each ``bot:Storey``: ``dsgo:elevation`` (m), its Elevation in the project's length unit.
On each ``bot:Element``: ``dsgo:loadBearing`` from ``LoadBearing`` of its ``Pset_*Common``
set (Pset_WallCommon, Pset_SlabCommon, Pset_BeamCommon, ...): whether it carries the
building. Which material carries it is a question for the data, not for the connector:
the element's material parts say it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pyoxigraph as ox

from connectors import terms
from connectors.terms import DSGO

__all__ = ["building_triples", "load_bearing", "roof_types", "storey_triples"]

#: (property set, property) -> the property entity, as the converter gathers them
Props = Mapping[tuple[str, str], Any]
#: a quantity or single value in SI units, or None
Si = Callable[[Any], float | None]

_STOREYS = ox.NamedNode(DSGO + "storeyCount")
_HEIGHT = ox.NamedNode(DSGO + "buildingHeight")
_FOOTPRINT = ox.NamedNode(DSGO + "footprintArea")
_ROOF_TYPE = ox.NamedNode(DSGO + "roofType")
_ELEVATION = ox.NamedNode(DSGO + "elevation")
_LOAD_BEARING = ox.NamedNode(DSGO + "loadBearing")
_UNNAMED = {None, "NOTDEFINED", "USERDEFINED"}


def quantity_named(props: Props, names: Iterable[str], si: Si) -> float | None:
    """The SI value of the first of ``names`` found in any quantity set of ``props``."""
    for name in names:
        for (_, prop_name), prop in props.items():
            if prop_name == name and prop.is_a("IfcPhysicalSimpleQuantity"):
                value = si(prop)
                if value is not None:
                    return value
    return None


def _single(props: Props, pset: str, name: str) -> Any:
    prop = props.get((pset, name))
    if prop is None or not prop.is_a("IfcPropertySingleValue") or prop.NominalValue is None:
        return None
    return prop.NominalValue.wrappedValue


def storey_triples(storey: Any, iri: ox.NamedNode, length_scale: float) -> list[ox.Triple]:
    if storey.Elevation is None:
        return []
    return terms.quantity(iri, _ELEVATION, float(storey.Elevation) * length_scale, "M")


def building_triples(
    iri: ox.NamedNode,
    props: Props,
    si: Si,
    storeys: int,
    top: float | None,
    outline: float | None,
    roofs: Iterable[str],
) -> list[ox.Triple]:
    out: list[ox.Triple] = []
    stated = _single(props, "Pset_BuildingCommon", "NumberOfStoreys")
    count = stated if isinstance(stated, int) and not isinstance(stated, bool) and stated >= 0 else storeys
    out.append(ox.Triple(iri, _STOREYS, terms.integer(count)))
    height = quantity_named(props, ("Height",), si)
    if height is None:
        height = top
    if height is not None:
        out += terms.quantity(iri, _HEIGHT, height, "M")
    footprint = quantity_named(props, ("FootprintArea",), si)
    if footprint is None:
        footprint = outline
    if footprint is not None:
        out += terms.quantity(iri, _FOOTPRINT, footprint, "M2")
    out += [ox.Triple(iri, _ROOF_TYPE, ox.Literal(kind)) for kind in sorted(set(roofs))]
    return out


def roof_types(roofs: Iterable[Any], loose_slabs: Iterable[Any], props: Mapping[int, Props]) -> list[str]:
    """The roof types of a building's IfcRoof (and, with none, of its roof slabs)."""
    found: list[str] = []
    roofs = list(roofs)
    for roof in roofs:
        named = getattr(roof, "PredefinedType", None) if roof.is_a("IfcRoof") else None
        if named is None and hasattr(roof, "ShapeType"):
            named = roof.ShapeType  # IFC2X3
        if named not in _UNNAMED:
            found.append(str(named))
            continue
        slabs = [p for rel in roof.IsDecomposedBy or () for p in rel.RelatedObjects if p.is_a("IfcSlab")]
        kind = _by_pitch(slabs, props)
        if kind:
            found.append(kind)
    if not roofs:
        kind = _by_pitch(list(loose_slabs), props)
        if kind:
            found.append(kind)
    return found


def _by_pitch(slabs: list[Any], props: Mapping[int, Props]) -> str | None:
    pitches = [_single(props.get(s.id(), {}), "Pset_SlabCommon", "PitchAngle") for s in slabs]
    known = [float(p) for p in pitches if isinstance(p, int | float) and not isinstance(p, bool)]
    if not known:
        return None
    return "FLAT_ROOF" if all(abs(p) < 1e-9 for p in known) else "PITCHED_ROOF"


def load_bearing(iri: ox.NamedNode, props: Props) -> list[ox.Triple]:
    for (pset, name), prop in props.items():
        if name == "LoadBearing" and pset.startswith("Pset_") and pset.endswith("Common"):
            value = _single({(pset, name): prop}, pset, name)
            if isinstance(value, bool):
                return [ox.Triple(iri, _LOAD_BEARING, terms.boolean(value))]
    return []
