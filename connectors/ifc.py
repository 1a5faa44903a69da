"""IFC models (IFC2X3, IFC4, IFC4X3 STEP files) as BOT, read with IfcOpenShell.

What becomes what
    IfcSite → bot:Site, IfcBuilding → bot:Building, IfcBuildingStorey → bot:Storey,
    IfcSpace → bot:Space, every other IfcElement → bot:Element, except features
    (IfcFeatureElement: openings, projections) and IfcVirtualElement, which are no
    building parts. Each also keeps its IFC class in ifcOWL's IFC4 ADD2 namespace (the
    ``ifc`` prefix of vocab/context.jsonld), IFC2X3 models too: the class names
    (IfcWall, IfcWindow, IfcWallStandardCase, ...) are the same, so one policy grant
    covers models of either schema. ``rdfs:label`` is the Name, ``props:globalId`` the
    GlobalId.
IRIs
    ``{base_iri}id/ifc/{GlobalId}`` with ``$`` written as ``-``. GlobalIds use only
    ``0-9 A-Z a-z _ $``, so the IRI is IRI-safe, stable across re-exports that keep
    GlobalIds, and reversible. A malformed GlobalId is percent-encoded (and reported).
Relations
    IfcRelAggregates → bot:hasBuilding / bot:hasStorey / bot:hasSpace (by the part's
    kind), bot:hasSubElement between elements (a stair's flights);
    IfcRelContainedInSpatialStructure → bot:containsElement;
    IfcRelReferencedInSpatialStructure → bot:hasElement (in the zone, contained elsewhere);
    IfcRelVoidsElement + IfcRelFillsElement (window in opening in wall) → wall
    bot:hasSubElement window; IfcRelSpaceBoundary → space bot:adjacentElement element.
Properties
    Property and quantity sets of the object and of its type (the object's own value
    wins) become ``props:`` properties named after the property alone (as IFCtoLBD does),
    camel-cased with all but ASCII letters and digits dropped: ``IsExternal`` →
    ``props:isExternal``, ``HeatTransferCoefficient(U)`` → ``props:heatTransferCoefficientU``.
    Single, enumerated and list values are kept (bounded, table, reference and complex
    properties are not); booleans are xsd:boolean, integers xsd:integer, reals
    xsd:decimal (see connectors.terms), texts xsd:string; UNKNOWN logicals and empty
    texts are left out.
Units (QUDT)
    A measured value is a quantity value, always in SI:
    ``props:length [ qudt:numericValue 21 ; qudt:unit unit:M ]``. Lengths, areas and
    volumes are converted with the model's own units (the property's unit if it names
    one, else the project's: smallhouse.ifc has lengths in mm and areas in m²,
    TWO_WALLS.ifc areas in square feet). Thermal transmittance (unit:W-PER-M2-K),
    thermal resistance (unit:M2-K-PER-W) and power (unit:W) are taken as SI, as
    exporters write them. Other measures are plain numbers.
U-values
    ``ThermalTransmittance`` of Pset_WindowCommon, Pset_DoorCommon, Pset_WallCommon and
    Pset_RoofCommon is also ``dsgo:uValue``: an xsd:decimal in W/(m²·K) a policy can
    grant by name.
Materials
    Each element's material parts (layers with their thickness, constituents, profiles,
    single materials), with a category from the node's material table and their volume
    where the model gives it: ``connectors.ifc_materials``. Where the model states no
    volume, IfcOpenShell computes it from the geometry (``connectors.ifc_geometry``; the
    ``geometry = false`` option of the ``[[source]]`` turns that off). ``materials =
    "FILE.toml"`` gives the source its own material table instead of
    ``connectors/materials.toml``.
Structure
    Storey count, height, footprint and roof type of each building, the elevation of each
    storey, whether an element is load-bearing: ``connectors.ifc_structure``; both put
    together by ``connectors.ifc_form``.
BAG
    ``dsgo:bagPand <https://bag.basisregistraties.overheid.nl/id/pand/{16 digits}>`` on
    the building comes from the ``bag_pand`` option of its ``[[source]]`` (a model with
    one IfcBuilding) or from a property of the IfcBuilding named BAGid, BagPandId,
    bag_pand, BAG pand id, PandId or Pandidentificatie (case, spaces and punctuation do
    not matter) holding 16 digits. The option wins over the model.

A file that is not IFC-SPF, has a schema IfcOpenShell does not know, or is corrupt or
truncated is one ``SourceError`` naming the file and the line where the parser saw it.
``load`` returns every triple or raises. Flaws that leave the rest sound (duplicate or
malformed GlobalIds, a BAG id that is not 16 digits) are listed in ``problems``.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyoxigraph as ox

from connectors import ifc_form, ifc_materials, terms
from connectors.base import Progress, SourceEnv, file_fingerprint
from connectors.terms import BOT, DSGO, IFC, PROPS, QUDT, RDF_TYPE, RDFS_LABEL, UNIT, XSD
from gateway.errors import SourceError

__all__ = ["OPTIONS", "PATHS", "IfcModel", "property_name"]

_BAG_ID = re.compile(r"[0-9]{16}")
OPTIONS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "bag_pand": (
        lambda v: isinstance(v, str) and _BAG_ID.fullmatch(v) is not None,
        'expected the 16 digits of the model\'s BAG pand as a string, e.g. "0363100012345678"',
    ),
    "materials": (
        lambda v: isinstance(v, str) and v.endswith(".toml"),
        'expected the path of a material table, e.g. "materials.toml" (see connectors/materials.toml)',
    ),
    "geometry": (
        lambda v: isinstance(v, bool),
        "expected true (compute volumes and heights the model does not state from its geometry) or false",
    ),
}
PATHS = frozenset({"materials"})

#: normalised (lowercase, letters and digits only) property names that hold a BAG pand id
BAG_NAMES = frozenset({"bagid", "bagpandid", "bagpand", "pandid", "pandidentificatie"})
#: (property set, property) pairs that are a U-value (dsgo:uValue)
U_VALUES = frozenset(
    (pset, "ThermalTransmittance")
    for pset in ("Pset_WindowCommon", "Pset_DoorCommon", "Pset_WallCommon", "Pset_RoofCommon")
)
#: measure type -> (project unit type it is measured in, or None for SI; QUDT unit)
_MEASURES: dict[str, tuple[str | None, str]] = {
    "IfcLengthMeasure": ("LENGTHUNIT", "M"),
    "IfcPositiveLengthMeasure": ("LENGTHUNIT", "M"),
    "IfcNonNegativeLengthMeasure": ("LENGTHUNIT", "M"),
    "IfcAreaMeasure": ("AREAUNIT", "M2"),
    "IfcVolumeMeasure": ("VOLUMEUNIT", "M3"),
    "IfcThermalTransmittanceMeasure": (None, "W-PER-M2-K"),
    "IfcThermalResistanceMeasure": (None, "M2-K-PER-W"),
    "IfcPowerMeasure": (None, "W"),
}
_QUANTITIES = {
    "IfcQuantityLength": ("LengthValue", "IfcLengthMeasure"),
    "IfcQuantityArea": ("AreaValue", "IfcAreaMeasure"),
    "IfcQuantityVolume": ("VolumeValue", "IfcVolumeMeasure"),
    "IfcQuantityCount": ("CountValue", "IfcCountMeasure"),
    "IfcQuantityWeight": ("WeightValue", "IfcMassMeasure"),
    "IfcQuantityTime": ("TimeValue", "IfcTimeMeasure"),
}
_ZONES = (
    ("IfcSite", "Site"),
    ("IfcBuilding", "Building"),
    ("IfcBuildingStorey", "Storey"),
    ("IfcSpace", "Space"),
)
#: bot: link from a zone to a part, by the part's BOT class
_ZONE_PART = {"Building": "hasBuilding", "Storey": "hasStorey", "Space": "hasSpace", "Element": "hasElement"}
_GLOBAL_ID = re.compile(r"[0-9A-Za-z_$]{22}")
_TRAILER = b"END-ISO-10303-21;"
_OPEN_LOCK = threading.Lock()  # IfcOpenShell's log is one per process


def _n(iri: str) -> ox.NamedNode:
    return ox.NamedNode(iri)


_BOT_CLASS = {c: _n(BOT + c) for c in ("Site", "Building", "Storey", "Space", "Element")}
_HAS = {p: _n(BOT + p) for p in (*_ZONE_PART.values(), "hasSubElement", "containsElement", "adjacentElement")}
_GLOBAL_ID_P = _n(PROPS + "globalId")
_NUMERIC_VALUE = _n(QUDT + "numericValue")
_QUDT_UNIT = _n(QUDT + "unit")
_U_VALUE = _n(DSGO + "uValue")
_XSD_DECIMAL = _n(XSD + "decimal")
_XSD_INTEGER = _n(XSD + "integer")
_BAG_PAND = _n(DSGO + "bagPand")


@dataclass(slots=True)
class IfcModel:
    """One IFC file; ``problems`` lists the flaws of the last model loaded."""

    path: Path
    env: SourceEnv
    bag_pand: str | None = None
    materials: Path = ifc_materials.DEFAULT_TABLE
    geometry: bool = True
    problems: list[SourceError] = field(default_factory=list)

    @classmethod
    def make(cls, path: Path, options: Mapping[str, Any], env: SourceEnv) -> IfcModel:
        table = Path(options["materials"]) if "materials" in options else ifc_materials.DEFAULT_TABLE
        return cls(path, env, options.get("bag_pand"), table, options.get("geometry", True))

    def fingerprint(self) -> str:
        return file_fingerprint(self.path, self.materials)

    def load(self, progress: Progress | None = None) -> list[ox.Triple]:
        ifcopenshell = _import(self.path)
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise SourceError(self.path, f"cannot be read ({exc.strerror or exc})") from None
        if progress:
            progress("reading", 0, 0)
        _check_framing(self.path, data)
        table = ifc_materials.MaterialTable.load(self.materials)
        model = _open(ifcopenshell, self.path, data)
        convert = _Converter(ifcopenshell, model, self.path, data, self.env.base_iri, progress)
        triples = convert.run(self.bag_pand, table, self.geometry)
        self.problems = convert.problems
        return triples


def property_name(name: str) -> str:
    """An IFC property name as an IRI-safe camelCase local name (stable, never empty)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words: list[str] = re.findall(r"[A-Za-z0-9]+", ascii_name)
    if not words:
        return "p" + name.encode().hex()
    first = words[0].lower() if words[0].isupper() else words[0][0].lower() + words[0][1:]
    return first + "".join(w[0].upper() + w[1:] for w in words[1:])


def _import(path: Path) -> Any:
    try:
        import ifcopenshell
        import ifcopenshell.util.element
        import ifcopenshell.util.unit
    except ImportError:
        raise SourceError(path, "reading IFC models needs IfcOpenShell: install dsgo-gateway[ifc]") from None
    return ifcopenshell


def _line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _entity_line(data: bytes, entity_id: int) -> int | None:
    found = re.search(rb"(?m)^[ \t]*#%d[ \t]*=" % entity_id, data)
    return _line_at(data, found.start()) if found else None


def _check_framing(path: Path, data: bytes) -> None:
    """An IFC-SPF file starts with ISO-10303-21; and ends with END-ISO-10303-21; (ISO 10303-21 §5)."""
    if not data.lstrip().startswith(b"ISO-10303-21;"):
        raise SourceError(path, "not an IFC file: it does not start with ISO-10303-21; (IFC-SPF is read)", 1)
    if not data.rstrip().endswith(_TRAILER):
        raise SourceError(
            path,
            "truncated: the file does not end with END-ISO-10303-21; (was it copied whole?)",
            data.rstrip().count(b"\n") + 1,
        )


def _open(ifcopenshell: Any, path: Path, data: bytes) -> Any:
    wrapper = ifcopenshell.ifcopenshell_wrapper
    with _OPEN_LOCK:
        wrapper.set_log_format_json()
        wrapper.get_log()  # drop what earlier callers left
        try:
            model = ifcopenshell.open(str(path), format=".ifc")
        except ifcopenshell.SchemaError as exc:
            found = re.search(rb"FILE_SCHEMA\s*\(\s*\(\s*'([^']*)'", data)
            name = found.group(1).decode(errors="replace") if found else str(exc)
            known = ", ".join(s for s in wrapper.schema_names() if s.startswith("IFC"))
            raise SourceError(
                path,
                f"unknown IFC schema {name!r}; IfcOpenShell reads {known}",
                _line_at(data, found.start()) if found else None,
            ) from None
        except (ifcopenshell.Error, OSError) as exc:
            raise SourceError(path, f"not a readable IFC file ({exc})") from None
        finally:
            log = wrapper.get_log()
            wrapper.set_log_format_text()
    _check_log(path, data, log)
    if not model.by_type("IfcProject"):
        raise SourceError(path, "not an IFC model: it has no IfcProject")
    return model


def _check_log(path: Path, data: bytes, log: str) -> None:
    """Fail on the parser's errors and on entities with the wrong number of attributes."""
    fatal: list[str] = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") == "error" or entry.get("code") == "VAL016":
            fatal.append(str(entry.get("message", line)))
    if not fatal:
        return
    message = fatal[0]
    where: int | None = None
    if offset := re.search(r" at offset (\d+)", message):
        where = _line_at(data, int(offset.group(1)))
        message = message[: offset.start()] + message[offset.end() :]
    elif instance := re.search(r"instance #(\d+)", message):
        where = _entity_line(data, int(instance.group(1)))
    more = f" (and {len(fatal) - 1} more errors)" if len(fatal) > 1 else ""
    raise SourceError(path, f"corrupt IFC file: {message}{more}", where)


# one converted value: (literal, QUDT unit or None)
_Value = tuple[ox.Literal, ox.NamedNode | None]


class _Converter:
    """One model to triples; every method appends to ``out`` and ``problems``."""

    def __init__(
        self, ifcopenshell: Any, model: Any, path: Path, data: bytes, base: str, progress: Progress | None
    ) -> None:
        self.util_unit = ifcopenshell.util.unit
        self.model, self.path, self.data, self.progress = model, path, data, progress
        self.prefix = base + "id/ifc/"
        self.out: list[ox.Triple] = []
        self.problems: list[SourceError] = []
        self.iri: dict[int, ox.NamedNode] = {}  # entity id -> IRI
        self.kind: dict[int, str] = {}  # entity id -> BOT class name
        self.used: set[ox.NamedNode] = set()
        self.at: Any = None  # the entity being converted, for errors
        self.scales: dict[str, float] = {}
        self.names: dict[str, ox.NamedNode] = {}
        self.values: dict[int, tuple[ox.NamedNode, list[_Value]]] = {}
        self.props: dict[int, dict[tuple[str, str], Any]] = {}  # entity id -> its properties
        self.products: list[Any] = []
        self.units = {qudt: _n(UNIT + qudt) for _, qudt in _MEASURES.values()}

    def run(
        self, bag_pand: str | None, table: ifc_materials.MaterialTable, geometry: bool
    ) -> list[ox.Triple]:
        try:
            products = self.products = self._products()
            for i, entity in enumerate(products):
                self.at = entity
                self._product(entity)
                if self.progress and (i % 64 == 0 or i + 1 == len(products)):
                    self.progress("converting objects", i + 1, len(products))
            self.at = None
            self._relations()
            self._properties(bag_pand)
            self.out += ifc_form.triples(self, table, geometry)
        except (RuntimeError, ValueError, TypeError) as exc:
            at = self.at
            where = f" at #{at.id()} ({at.is_a()})" if at is not None else ""
            line = _entity_line(self.data, at.id()) if at is not None else None
            raise SourceError(self.path, f"cannot be converted{where}: {exc}", line) from None
        return self.out

    def _problem(self, entity: Any, reason: str) -> None:
        self.problems.append(SourceError(self.path, reason, _entity_line(self.data, entity.id())))

    # -- objects ---------------------------------------------------------------------

    def _products(self) -> list[Any]:
        products: list[Any] = []
        for ifc_class, bot_class in _ZONES:
            for entity in self.model.by_type(ifc_class):
                self.kind[entity.id()] = bot_class
                products.append(entity)
        for entity in self.model.by_type("IfcElement"):
            if not (entity.is_a("IfcFeatureElement") or entity.is_a("IfcVirtualElement")):
                self.kind[entity.id()] = "Element"
                products.append(entity)
        return products

    def _product(self, entity: Any) -> None:
        gid = entity.GlobalId or ""
        if _GLOBAL_ID.fullmatch(gid):
            local = gid.replace("$", "-")
        else:
            local = quote(gid, safe="") or f"entity-{entity.id()}"
            self._problem(entity, f"{entity.is_a()} #{entity.id()}: {gid!r} is not a 22-character GlobalId")
        iri = _n(self.prefix + local)
        if iri in self.used:
            self._problem(
                entity,
                f"{entity.is_a()} #{entity.id()}: GlobalId {gid} is used twice; both are published as one",
            )
        self.used.add(iri)
        self.iri[entity.id()] = iri
        add = self.out.append
        add(ox.Triple(iri, RDF_TYPE, _BOT_CLASS[self.kind[entity.id()]]))
        add(ox.Triple(iri, RDF_TYPE, self._name(IFC, entity.is_a())))
        add(ox.Triple(iri, _GLOBAL_ID_P, ox.Literal(gid)))
        if entity.Name:
            add(ox.Triple(iri, RDFS_LABEL, ox.Literal(entity.Name)))

    def _name(self, namespace: str, local: str) -> ox.NamedNode:
        key = namespace + local
        node = self.names.get(key)
        if node is None:
            node = self.names[key] = _n(key)
        return node

    # -- relations -------------------------------------------------------------------

    def _link(self, a: Any, predicate: str, b: Any, seen: set[tuple[int, int]] | None = None) -> None:
        if a is None or b is None:
            return
        ia, ib = self.iri.get(a.id()), self.iri.get(b.id())
        if ia is None or ib is None or ia == ib:
            return
        if seen is not None:
            if (a.id(), b.id()) in seen:
                return
            seen.add((a.id(), b.id()))
        self.out.append(ox.Triple(ia, _HAS[predicate], ib))

    def _relations(self) -> None:
        model, kind = self.model, self.kind
        for rel in model.by_type("IfcRelAggregates"):
            self.at = rel
            whole = rel.RelatingObject
            for part in rel.RelatedObjects or ():
                part_kind, whole_kind = kind.get(part.id()), kind.get(whole.id())
                if part_kind is None or whole_kind is None:
                    continue
                if whole_kind == "Element":
                    if part_kind == "Element":
                        self._link(whole, "hasSubElement", part)
                elif part_kind != "Site":
                    self._link(whole, _ZONE_PART[part_kind], part)
        for rel in model.by_type("IfcRelContainedInSpatialStructure"):
            self.at = rel
            for part in rel.RelatedElements or ():
                if kind.get(part.id()) == "Element":
                    self._link(rel.RelatingStructure, "containsElement", part)
        for rel in model.by_type("IfcRelReferencedInSpatialStructure"):
            self.at = rel
            for part in rel.RelatedElements or ():
                if kind.get(part.id()) == "Element":
                    self._link(rel.RelatingStructure, "hasElement", part)
        hosts = {
            r.RelatedOpeningElement.id(): r.RelatingBuildingElement
            for r in model.by_type("IfcRelVoidsElement")
        }
        for rel in model.by_type("IfcRelFillsElement"):
            self.at = rel
            self._link(
                hosts.get(rel.RelatingOpeningElement.id()), "hasSubElement", rel.RelatedBuildingElement
            )
        seen: set[tuple[int, int]] = set()
        for rel in model.by_type("IfcRelSpaceBoundary"):
            self.at = rel
            element = rel.RelatedBuildingElement
            if element is not None and kind.get(element.id()) == "Element":
                self._link(rel.RelatingSpace, "adjacentElement", element, seen)
        self.at = None

    # -- properties ------------------------------------------------------------------

    def _properties(self, bag_pand: str | None) -> None:
        """Each object's properties: its type's first, then its own (which win)."""
        per_object = self.props

        def assign(objects: Iterable[Any], psets: Iterable[Any]) -> None:
            psets = [p for p in psets if p.is_a("IfcPropertySet") or p.is_a("IfcElementQuantity")]
            for obj in objects:
                if obj.id() not in self.kind:
                    continue
                props = per_object.setdefault(obj.id(), {})
                for pset in psets:
                    items = pset.HasProperties if pset.is_a("IfcPropertySet") else pset.Quantities
                    for prop in items or ():
                        props[(pset.Name or "", prop.Name or "")] = prop

        for rel in self.model.by_type("IfcRelDefinesByType"):
            self.at = rel
            assign(rel.RelatedObjects or (), rel.RelatingType.HasPropertySets or ())
        for rel in self.model.by_type("IfcRelDefinesByProperties"):
            self.at = rel
            definition = rel.RelatingPropertyDefinition
            psets = definition if isinstance(definition, tuple) else (definition,)  # IFC4 sets
            assign(rel.RelatedObjects or (), psets)

        for entity_id, props in per_object.items():
            subject = self.iri[entity_id]
            seen: set[tuple[ox.NamedNode, ox.Literal, ox.NamedNode | None]] = set()
            u_value = False
            for key, prop in props.items():
                self.at = prop
                predicate, values = self._values(prop)
                for value in values:
                    if (predicate, *value) not in seen:
                        seen.add((predicate, *value))
                        self._emit(subject, predicate, value)
                    if key in U_VALUES and not u_value and value[0].datatype == _XSD_DECIMAL:
                        self.out.append(ox.Triple(subject, _U_VALUE, value[0]))
                        u_value = True
        self.at = None
        self._bag(per_object, bag_pand)

    def _emit(self, subject: ox.NamedNode, predicate: ox.NamedNode, value: _Value) -> None:
        literal, unit = value
        if unit is None:
            self.out.append(ox.Triple(subject, predicate, literal))
            return
        quantity = ox.BlankNode()
        self.out += (
            ox.Triple(subject, predicate, quantity),
            ox.Triple(quantity, _NUMERIC_VALUE, literal),
            ox.Triple(quantity, _QUDT_UNIT, unit),
        )

    def _values(self, prop: Any) -> tuple[ox.NamedNode, list[_Value]]:
        """A property's predicate and SI values, converted once per property entity."""
        cached = self.values.get(prop.id())
        if cached is not None:
            return cached
        raw: list[tuple[str | None, Any]] = []
        unit = getattr(prop, "Unit", None)
        ifc_class = prop.is_a()
        if ifc_class == "IfcPropertySingleValue":
            items: Iterable[Any] = (prop.NominalValue,)
        elif ifc_class == "IfcPropertyEnumeratedValue":
            items = prop.EnumerationValues or ()
        elif ifc_class == "IfcPropertyListValue":
            items = prop.ListValues or ()
        elif ifc_class in _QUANTITIES:
            attribute, measure = _QUANTITIES[ifc_class]
            items, raw = (), [(measure, getattr(prop, attribute))]
        else:
            items = ()
        raw += [(v.is_a(), v.wrappedValue) for v in items if v is not None]
        values = [v for v in (self._value(m, x, unit) for m, x in raw) if v is not None]
        result = self.values[prop.id()] = (self._name(PROPS, property_name(prop.Name or "")), values)
        return result

    def _value(self, measure: str | None, value: Any, unit: Any) -> _Value | None:
        if isinstance(value, bool):
            return terms.boolean(value), None
        if isinstance(value, int | float) and measure in _MEASURES:
            unit_type, qudt = _MEASURES[measure]
            scale = self._scale(unit_type, unit) if unit_type else 1.0
            literal = terms.decimal(float(value) * scale)
            return (literal, self.units[qudt]) if literal is not None else None
        if isinstance(value, int):
            return terms.integer(value), None
        if isinstance(value, float):
            literal = terms.decimal(value)
            return (literal, None) if literal is not None else None
        if isinstance(value, str) and value and not (measure == "IfcLogical" and value == "UNKNOWN"):
            return ox.Literal(value), None
        return None

    def _scale(self, unit_type: str, unit: Any) -> float:
        """Factor to SI: the property's own named unit, else the project's for ``unit_type``."""
        if unit is not None and unit.is_a("IfcNamedUnit") and unit.UnitType == unit_type:
            return float(self.util_unit.get_unit_scale(unit))
        scale = self.scales.get(unit_type)
        if scale is None:
            scale = self.scales[unit_type] = float(self.util_unit.calculate_unit_scale(self.model, unit_type))
        return scale

    # -- materials and structure (connectors.ifc_form) ---------------------------------

    def si(self, prop: Any) -> float | None:
        """A numeric property or quantity in SI units (as published), or None."""
        for literal, _ in self._values(prop)[1]:
            if literal.datatype in (_XSD_DECIMAL, _XSD_INTEGER):
                return float(literal.value)
        return None

    def length_scale(self) -> float:
        return self._scale("LENGTHUNIT", None)

    # -- BAG -------------------------------------------------------------------------

    def _bag(self, per_object: dict[int, dict[tuple[str, str], Any]], configured: str | None) -> None:
        buildings = self.model.by_type("IfcBuilding")
        if configured is not None and len(buildings) > 1:
            raise SourceError(
                self.path,
                f"bag_pand names one building, but the model has {len(buildings)} IfcBuilding; "
                "give each building its BAG id in a property (BAGid) instead",
            )
        if configured is not None and not buildings:
            self.problems.append(SourceError(self.path, "bag_pand is set, but the model has no IfcBuilding"))
        for building in buildings:
            found: str | None = None
            for (_, name), prop in per_object.get(building.id(), {}).items():
                if re.sub(r"[^a-z0-9]", "", name.lower()) in BAG_NAMES and prop.is_a(
                    "IfcPropertySingleValue"
                ):
                    found = self._bag_id(building, name, prop.NominalValue)
            if configured is not None:
                if found is not None and found != configured:
                    self._problem(
                        building,
                        f"IfcBuilding #{building.id()}: the model says BAG pand {found}, "
                        f"the configuration {configured}; the configuration wins",
                    )
                found = configured
            if found is not None:
                self.out.append(ox.Triple(self.iri[building.id()], _BAG_PAND, _n(terms.BAG_PAND + found)))

    def _bag_id(self, building: Any, name: str, value: Any) -> str | None:
        raw = value.wrappedValue if value is not None else None
        if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < 10**16:
            return f"{raw:016d}"  # a number lost its leading zero
        text = re.sub(r"\s", "", raw) if isinstance(raw, str) else ""
        if _BAG_ID.fullmatch(text):
            return text
        self._problem(
            building,
            f"IfcBuilding #{building.id()}: property {name!r} = {raw!r} is no BAG pand id (16 digits)",
        )
        return None
