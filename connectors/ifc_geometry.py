"""Volumes and tops of IFC elements from their geometry, with IfcOpenShell's geometry engine.

Used where a model states no quantity: an element's volume
(``util_shape.get_volume`` of its triangulated body, openings subtracted) and
the elevation of its highest point (``get_shape_top_elevation``, world coordinates, in
metres), from which a building's height follows. Only construction elements are meshed
(``GEOMETRY_CLASSES``: walls, slabs, roofs, beams, columns, ...): a window's or a chair's
volume says nothing about what a building is made of, and meshing them would cost time.

Two passes keep it fast. The first meshes every element on IfcOpenShell's simple CGAL
kernel without subtracting openings (a fraction of a second for the Duplex model): that
gives every top, and the volume of every element without openings. The second meshes only
the elements with openings, on the hybrid CGAL/OpenCASCADE kernel, for their net volume;
the booleans make it the costly part (about 2 s of the Duplex model's 19 such walls and
slabs on an idle core pair). The iterator uses one thread per core, at most 4. An element
whose shape cannot be made (no body, a broken boolean) has no volume: what the model does
not say stays unknown.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["GEOMETRY_CLASSES", "Shape", "shapes"]

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


@dataclass(frozen=True, slots=True)
class Shape:
    volume: float  # m³
    top: float  # m, world z of the highest vertex


def shapes(model: Any, elements: Iterable[Any]) -> tuple[dict[int, Shape], int]:
    """The shape of each of ``elements`` that has one, by entity id, and how many failed."""
    wanted = [e for e in elements if e.Representation is not None]
    if not wanted:
        return {}, 0
    rough = _mesh(model, wanted, "cgal-simple", openings=False)
    with_openings = [e for e in wanted if e.HasOpenings and e.id() in rough]
    net = _mesh(model, with_openings, "hybrid-cgal-simple-opencascade", openings=True)
    found: dict[int, Shape] = {}
    for entity_id, (volume, top) in rough.items():
        if entity_id in net:
            found[entity_id] = Shape(net[entity_id][0], top)
        elif not any(e.id() == entity_id for e in with_openings):
            found[entity_id] = Shape(volume, top)
    return found, len(wanted) - len(found)


def _mesh(model: Any, elements: list[Any], kernel: str, openings: bool) -> dict[int, tuple[float, float]]:
    """(volume, top) by entity id of the elements the kernel could mesh."""
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
        found: dict[int, tuple[float, float]] = {}
        if iterator.initialize():
            while True:
                shape = iterator.get()
                geometry = shape.geometry
                volume = abs(float(util_shape.get_volume(geometry)))
                found[shape.id] = (
                    volume,
                    float(util_shape.get_shape_top_elevation(shape, geometry)),
                )
                if not iterator.next():
                    break
    except (RuntimeError, ValueError, TypeError):
        return {}
    return found
