"""What an IFC element is made of: its material parts, their categories and quantities.

Each part of an element's material definition (IfcRelAssociatesMaterial, the element's
own or else its type's) becomes a resource of its own, so a policy can grant its fields
one by one (a category and a volume to one party, the product name to another):
``{element IRI}/material/{n}``, ``n`` counting from 1 in the model's order, typed
``dsgo:MaterialPart`` and one of

- ``dsgo:MaterialLayer``: an IfcMaterialLayer of the element's IfcMaterialLayerSet(Usage),
  with ``dsgo:layerOrder`` (1 = the first layer of the set) and ``dsgo:thickness``;
- ``dsgo:MaterialConstituent``: an IfcMaterialConstituent (IFC4), with ``dsgo:fraction``
  where the model gives one;
- ``dsgo:MaterialProfile``: an IfcMaterialProfile (IFC4) of a beam, column or member;
- plain ``dsgo:MaterialPart``: a single IfcMaterial, or an item of an IfcMaterialList.

Every part carries ``dsgo:materialCategory`` (``biobased``, ``secondary``, ``mineral``,
``metal``, ``fossil`` or ``unknown``, from the node's material table, see
``connectors/materials.toml``), ``dsgo:materialName`` (IfcMaterial.Name), ``rdfs:label``
(the layer's, constituent's or profile's own Name, IFC4) and ``dsgo:density`` (kg/m³)
where the model says: ``Pset_MaterialCommon.MassDensity`` (IFC4) or
IfcGeneralMaterialProperties.MassDensity (IFC2X3).

A part's ``dsgo:volume`` (m³) is published only where it follows from the model:

- a layer: the element's net area times the layer's thickness, the area being the first
  of NetSideArea, NetArea, GrossSideArea, GrossArea in the element's quantity sets; else
  the element's volume shared out by thickness (volume * thickness / total thickness);
- the one part of a single material, a one-item list or set, or a single profile: the
  element's volume;
- constituents of a set of several, and items of a longer list: none (IFC4 leaves open
  whether a constituent's fraction is by volume or by weight).

The element's volume is NetVolume, else GrossVolume, of its quantity sets, else the
volume IfcOpenShell computes from its geometry (``connectors.ifc_geometry``; for an
element with openings only where a part needs it).
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyoxigraph as ox

from connectors import terms
from connectors.terms import DSGO, RDF_TYPE, RDFS_LABEL
from gateway.errors import SourceError

__all__ = [
    "AREA_NAMES",
    "CATEGORIES",
    "DEFAULT_TABLE",
    "VOLUME_NAMES",
    "MaterialTable",
    "Part",
    "PartWriter",
    "general_densities",
    "material_parts",
    "needs_volume",
    "normalise",
]

DEFAULT_TABLE = Path(__file__).resolve().parent / "materials.toml"
CATEGORIES = ("biobased", "secondary", "mineral", "metal", "fossil", "unknown")
#: quantity names that give the area a layer runs over, best first
AREA_NAMES = ("NetSideArea", "NetArea", "GrossSideArea", "GrossArea")
VOLUME_NAMES = ("NetVolume", "GrossVolume")

_KIND_CLASS = {
    "layer": "MaterialLayer",
    "constituent": "MaterialConstituent",
    "profile": "MaterialProfile",
    "material": None,
}


def _n(local: str) -> ox.NamedNode:
    return ox.NamedNode(DSGO + local)


_PART = _n("MaterialPart")
_CLASSES = {kind: _n(cls) for kind, cls in _KIND_CLASS.items() if cls}
_HAS_PART = _n("hasMaterialPart")
_CATEGORY = _n("materialCategory")
_NAME = _n("materialName")
_ORDER = _n("layerOrder")
_THICKNESS = _n("thickness")
_VOLUME = _n("volume")
_DENSITY = _n("density")
_FRACTION = _n("fraction")


@dataclass(frozen=True, slots=True)
class _Rule:
    category: str
    match: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MaterialTable:
    """Material names to categories: the first rule one of whose texts occurs wins."""

    path: Path
    rules: tuple[_Rule, ...]

    @classmethod
    def load(cls, path: Path = DEFAULT_TABLE) -> MaterialTable:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SourceError(path, f"the material table cannot be read ({exc.strerror or exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise SourceError(path, f"the material table is not valid TOML: {exc}") from None
        if data.get("version") != 1 or set(data) - {"version", "rule"}:
            raise SourceError(path, "a material table has `version = 1` and [[rule]] tables, nothing else")
        rules = []
        for i, rule in enumerate(data.get("rule", []), start=1):
            rules.append(_rule(path, i, rule))
        return cls(path, tuple(rules))

    def category(self, *texts: str | None) -> str:
        words = normalise(" ".join(t for t in texts if t))
        for rule in self.rules:
            if any(m in words for m in rule.match):
                return rule.category
        return "unknown"


def _rule(path: Path, i: int, rule: Any) -> _Rule:
    where = f"[[rule]] number {i}"
    if not isinstance(rule, dict) or set(rule) - {"category", "match", "basis"}:
        raise SourceError(path, f"{where}: the keys of a rule are category, match and basis")
    if rule.get("category") not in CATEGORIES:
        raise SourceError(path, f"{where}: category must be one of {', '.join(CATEGORIES)}")
    match = rule.get("match")
    if not isinstance(match, list) or not match or not all(isinstance(m, str) and m.strip() for m in match):
        raise SourceError(path, f"{where}: match must be a list of texts to look for")
    texts = tuple(" " * m.startswith(" ") + normalise(m).strip() + " " * m.endswith(" ") for m in match)
    return _Rule(rule["category"], texts)


def normalise(text: str) -> str:
    """Lower-case ASCII words, single-spaced, with a space before and after."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " " + " ".join(re.findall(r"[a-z0-9]+", ascii_text)) + " "


@dataclass(frozen=True, slots=True)
class Part:
    """One part of an element's material definition, as the model gives it."""

    kind: str  # layer, constituent, profile or material
    material: Any  # the IfcMaterial, or None
    name: str | None  # the part's own Name (IFC4 layers, constituents, profiles)
    thickness: float | None  # in the project's length unit (layers)
    fraction: float | None  # constituents
    order: int | None  # layers: 1, 2, ...


def material_parts(definition: Any) -> tuple[list[Part], bool]:
    """The parts of a material definition, and whether they share the element's volume
    out by layer thickness (a layer set) rather than being the whole element (one part)."""
    if definition is None:
        return [], False
    if definition.is_a("IfcMaterialLayerSetUsage"):
        definition = definition.ForLayerSet
    elif definition.is_a("IfcMaterialProfileSetUsage"):
        definition = definition.ForProfileSet
    if definition.is_a("IfcMaterialLayerSet"):
        return [
            Part("layer", layer.Material, getattr(layer, "Name", None), float(layer.LayerThickness), None, i)
            for i, layer in enumerate(definition.MaterialLayers or (), start=1)
        ], True
    if definition.is_a("IfcMaterialConstituentSet"):
        parts = [
            Part("constituent", c.Material, c.Name, None, _number(c.Fraction), None)
            for c in definition.MaterialConstituents or ()
        ]
        return parts, False
    if definition.is_a("IfcMaterialProfileSet"):
        return [
            Part("profile", p.Material, p.Name, None, None, None) for p in definition.MaterialProfiles or ()
        ], False
    if definition.is_a("IfcMaterialList"):
        return [Part("material", m, None, None, None, None) for m in definition.Materials or ()], False
    if definition.is_a("IfcMaterial"):
        return [Part("material", definition, None, None, None, None)], False
    return [], False


def needs_volume(definition: Any, has_area: bool) -> bool:
    """Whether a part's volume follows from the element's volume: a single part, or layers
    that run over no area the model states."""
    parts, layered = material_parts(definition)
    return (layered and not has_area) or (not layered and len(parts) == 1)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def density(material: Any) -> float | None:
    """kg/m³ as the model states it for ``material`` (taken as SI, as exporters write it)."""
    if material is None:
        return None
    for props in getattr(material, "HasProperties", None) or ():  # IFC4 IfcMaterialProperties
        for prop in getattr(props, "Properties", None) or ():
            if prop.Name == "MassDensity" and prop.is_a("IfcPropertySingleValue") and prop.NominalValue:
                return _number(prop.NominalValue.wrappedValue)
    return None


def general_densities(model: Any) -> dict[int, float]:
    """IFC2X3 material densities by material id: IfcGeneralMaterialProperties.MassDensity, or
    a MassDensity in IfcExtendedMaterialProperties (IFC2X3 has no link from the material)."""
    if model.schema != "IFC2X3":
        return {}
    found: dict[int, float] = {}
    for props in model.by_type("IfcGeneralMaterialProperties"):
        value = _number(props.MassDensity)
        if value is not None and props.Material is not None:
            found[props.Material.id()] = value
    for props in model.by_type("IfcExtendedMaterialProperties"):
        for prop in props.ExtendedProperties or ():
            if prop.Name == "MassDensity" and prop.is_a("IfcPropertySingleValue") and prop.NominalValue:
                value = _number(prop.NominalValue.wrappedValue)
                if value is not None and props.Material is not None:
                    found.setdefault(props.Material.id(), value)
    return found


@dataclass(slots=True)
class PartWriter:
    """Writes the parts of one model: the table, the length scale and the densities."""

    table: MaterialTable
    length_scale: float
    densities: Mapping[int, float]

    def triples(
        self, element_iri: ox.NamedNode, definition: Any, volume: float | None, area: float | None
    ) -> list[ox.Triple]:
        parts, layered = material_parts(definition)
        out: list[ox.Triple] = []
        total = sum(p.thickness or 0.0 for p in parts) * self.length_scale if layered else 0.0
        for i, part in enumerate(parts, start=1):
            iri = ox.NamedNode(f"{element_iri.value}/material/{i}")
            out.append(ox.Triple(element_iri, _HAS_PART, iri))
            out += self._part(iri, part, self._volume(part, len(parts), layered, total, volume, area))
        return out

    def _volume(
        self, part: Part, count: int, layered: bool, total: float, volume: float | None, area: float | None
    ) -> float | None:
        if layered and part.thickness is not None:
            thickness = part.thickness * self.length_scale
            if area is not None:
                return area * thickness
            if volume is not None and total > 0:
                return volume * thickness / total
            return None
        return volume if count == 1 else None

    def _part(self, iri: ox.NamedNode, part: Part, volume: float | None) -> list[ox.Triple]:
        material = part.material
        name = material.Name if material is not None else None
        ifc_category = getattr(material, "Category", None) if material is not None else None
        out = [ox.Triple(iri, RDF_TYPE, _PART)]
        if part.kind in _CLASSES:
            out.append(ox.Triple(iri, RDF_TYPE, _CLASSES[part.kind]))
        out.append(ox.Triple(iri, _CATEGORY, ox.Literal(self.table.category(name, ifc_category))))
        if name and name.strip():
            out.append(ox.Triple(iri, _NAME, ox.Literal(name.strip())))
        if part.name and part.name.strip():
            out.append(ox.Triple(iri, RDFS_LABEL, ox.Literal(part.name.strip())))
        if part.order is not None:
            out.append(ox.Triple(iri, _ORDER, terms.integer(part.order)))
        if part.thickness is not None:
            out += terms.quantity(iri, _THICKNESS, part.thickness * self.length_scale, "M")
        if part.fraction is not None:
            fraction = terms.decimal(part.fraction)
            if fraction is not None:
                out.append(ox.Triple(iri, _FRACTION, fraction))
        if volume is not None:
            out += terms.quantity(iri, _VOLUME, volume, "M3")
        mass_density = density(material)
        if mass_density is None and material is not None:
            mass_density = self.densities.get(material.id())
        if mass_density is not None:
            out += terms.quantity(iri, _DENSITY, mass_density, "KiloGM-PER-M3")
        return out
