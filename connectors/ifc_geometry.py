"""Volumes, tops and outlines of IFC elements from their geometry, with IfcOpenShell's
geometry engine.

Used where a model states no quantity: an element's volume (``util_shape.get_volume`` of
its triangulated body, openings subtracted), the elevation of its highest point (world
coordinates, in metres), from which a building's height follows, and its outline seen
from above (the union of its upward faces projected on the ground plane, with shapely),
from which a building's footprint follows: what a plan view of it covers, overhangs
included, as the BAG records a pand (BAG catalogus 2018, Pand, geometrie: "het
bovenaanzicht van de omtrekken"). Only construction elements are meshed
(``GEOMETRY_CLASSES``: walls, slabs, roofs, beams, columns, ...): a window's or a chair's
volume says nothing about what a building is made of, and meshing them would cost time.

Two passes keep it fast. The first meshes every element on IfcOpenShell's simple CGAL
kernel without subtracting openings (a fraction of a second for the Duplex model): that
gives every top and outline, and the volume of every element without openings. The
second meshes, on the hybrid CGAL/OpenCASCADE kernel with openings subtracted, only those
elements with openings whose volume a material part needs (a single material, or layers
without an area): the booleans are the costly part (about 4 CPU-seconds for the Duplex
model's 19 walls and slabs with openings, none of which needs it, its walls being of
several constituents). Any other element with openings gets no volume: its volume
without the openings would be wrong, and what is not known stays unknown. The iterator
uses one thread per core, at most 4. An element whose shape cannot be made (no body, a
broken boolean) has no volume either.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["GEOMETRY_CLASSES", "Shape", "footprint", "shapes"]

GEOMETRY_CLASSES = (
    "IfcWall",
    "IfcSlab",
    "IfcRoof",
    "IfcBeam",
    "IfcColumn",
    "IfcCovering",
    "IfcFooting",
    "IfcMember",
    "IfcPlate",
    "IfcPile",
    "IfcStairFlight",
    "IfcRampFlight",
    "IfcChimney",
)
_HYBRID = "hybrid-cgal-simple-opencascade"


@dataclass(frozen=True, slots=True)
class Shape:
    volume: float | None  # m³; None for an element with openings whose volume no part needs
    top: float  # m, world z of the highest vertex
    outline: Any  # a shapely geometry: the upward faces on the ground plane (m), or None


def shapes(model: Any, elements: Iterable[Any], net: Collection[int] = ()) -> tuple[dict[int, Shape], int]:
    """The shape of each of ``elements`` that has one, by entity id, and how many failed;
    elements with openings get a volume only if their id is in ``net``."""
    wanted = [e for e in elements if e.Representation is not None]
    if not wanted:
        return {}, 0
    rough = _mesh(model, wanted, "cgal-simple", openings=False)
    holed = {e.id() for e in wanted if e.HasOpenings}
    exact = _mesh(model, [e for e in wanted if e.id() in holed and e.id() in net], _HYBRID, openings=True)
    found: dict[int, Shape] = {}
    for entity_id, (rough_volume, top, outline) in rough.items():
        volume: float | None = rough_volume
        if entity_id in holed:
            volume = exact[entity_id][0] if entity_id in exact else None
        found[entity_id] = Shape(volume, top, outline)
    failed = len(wanted) - len(rough) + sum(1 for i in holed & set(net) if i in rough and i not in exact)
    return found, failed


def footprint(shapes: Iterable[Shape]) -> float | None:
    """The area (m²) of the union of the outlines of ``shapes``; None if none has one."""
    import shapely

    outlines = [s.outline for s in shapes if s.outline is not None]
    return float(shapely.union_all(outlines).area) if outlines else None


#: (volume, top, outline) of an element
_Mesh = tuple[float, float, Any]


def _mesh(model: Any, elements: list[Any], kernel: str, openings: bool) -> dict[int, _Mesh]:
    """(volume, top, outline) by entity id of the elements the kernel could mesh."""
    if not elements:
        return {}
    import ifcopenshell.geom
    import ifcopenshell.util.shape

    geom: Any = ifcopenshell.geom  # typed in part only: its kernel names are a Literal
    util_shape: Any = ifcopenshell.util.shape
    settings = geom.settings()
    if not openings:
        settings.set("disable-opening-subtractions", True)
    threads = max(1, min(4, os.cpu_count() or 1))
    try:
        iterator = geom.iterator(settings, model, threads, include=elements, geometry_library=kernel)
        found: dict[int, _Mesh] = {}
        if iterator.initialize():
            while True:
                shape = iterator.get()
                geometry = shape.geometry
                volume = abs(float(util_shape.get_volume(geometry)))
                world = util_shape.get_shape_vertices(shape, geometry)
                if len(world):  # an empty body has no shape
                    outline = None if openings else _outline(world, util_shape.get_faces(geometry))
                    found[shape.id] = (volume, float(world[:, 2].max()), outline)
                if not iterator.next():
                    break
    except (RuntimeError, ValueError, TypeError):
        return {}
    return found


def _outline(world: Any, faces: Any) -> Any:
    """The union of the triangles that face up, on the ground plane; None if none does."""
    import numpy
    import shapely

    triangles = world[faces]
    normals = numpy.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    up = triangles[normals[:, 2] > 1e-12][:, :, :2]
    return shapely.union_all(shapely.polygons(up)) if len(up) else None
