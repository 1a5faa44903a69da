"""What the vocabularies in ``vocab/`` say about their terms, for people: labels, comments,
units, and a title per vocabulary.

Read once from the package's Turtle files (the same files ``gateway.vocab`` reads), so a
page can call ``dsgo:rcRoof`` "thermal resistance Rc of the roof" and show its value in
m²·K/W. Terms the files do not describe fall back to their prefixed name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import pyoxigraph as ox

from gateway.vocab import vocab_dir

__all__ = ["LABELS", "Term", "Terms", "best_label", "humane", "load_terms", "term_triples", "unit_symbol"]

_RDFS = "http://www.w3.org/2000/01/rdf-schema#"
_DCT = "http://purl.org/dc/terms/"
_QUDT_UNIT = "http://qudt.org/schema/qudt/unit"
_UNIT = "http://qudt.org/vocab/unit/"
_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
_OWL_ONTOLOGY = "http://www.w3.org/2002/07/owl#Ontology"

#: predicates whose value names a resource for people, best first
LABELS = (
    _RDFS + "label",
    "http://www.w3.org/2004/02/skos/core#prefLabel",
    _DCT + "title",
    "https://vocab.dsgo.example/def#address",
    "https://schema.org/name",
    "http://xmlns.com/foaf/0.1/name",
)

#: QUDT units as people write them (https://qudt.org/vocab/unit/)
_SYMBOLS = {
    "M2-K-PER-W": "m²·K/W",
    "W-PER-M2-K": "W/(m²·K)",
    "M": "m",
    "MilliM": "mm",
    "M2": "m²",
    "M3": "m³",
    "KiloGM": "kg",
    "DEG_C": "°C",
    "K": "K",
    "W": "W",
    "KiloW-HR": "kWh",
    "KiloW-HR-PER-M2": "kWh/m²",
    "PERCENT": "%",
    "EUR": "€",
}

#: titles of common vocabularies that ``vocab/`` does not hold
_TITLES = {
    "http://www.w3.org/2000/01/rdf-schema#": "Names and descriptions",
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "RDF",
    "https://w3id.org/props#": "Property sets (IFC)",
    "https://standards.buildingsmart.org/IFC/DEV/IFC4/ADD2/OWL#": "IFC",
    "https://bag.basisregistraties.overheid.nl/def/bag#": "BAG (addresses and buildings)",
    "http://www.w3.org/ns/hydra/core#": "Collection",
    "http://rdfs.org/ns/void#": "Dataset description (VoID)",
    "http://www.w3.org/ns/dcat#": "Catalogue (DCAT)",
    "http://purl.org/dc/terms/": "Dublin Core",
    "http://qudt.org/schema/qudt/": "Quantities (QUDT)",
}


@dataclass(frozen=True, slots=True)
class Term:
    iri: str
    label: str = ""
    comment: str = ""
    #: the QUDT unit of the property's values (qudt:unit on the property)
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Terms:
    by_iri: dict[str, Term]
    #: namespace -> title of its vocabulary
    titles: dict[str, str]

    def get(self, iri: str) -> Term | None:
        return self.by_iri.get(iri)

    def title(self, namespace: str) -> str:
        return self.titles.get(namespace) or _TITLES.get(namespace, "")


def _english(literals: list[ox.Literal]) -> str:
    """The English text of a term, else an untagged one, else any."""
    for wanted in ("en", ""):
        for lit in literals:
            if (lit.language or "") == wanted:
                return lit.value
    return literals[0].value if literals else ""


def _vocabulary_quads() -> list[ox.Quad]:
    """Every statement of vocab/'s vocabularies (not its SHACL shapes)."""
    out: list[ox.Quad] = []
    for ttl in sorted(vocab_dir().glob("*.ttl")):
        if ttl.name != "shapes.ttl":
            out.extend(ox.parse(path=str(ttl)))
    return out


_TEXTS = (_RDFS + "label", _RDFS + "comment", _DCT + "title")


@cache
def load_terms() -> Terms:
    texts: dict[tuple[str, str], list[ox.Literal]] = {}
    units: dict[str, str] = {}
    ontologies: list[str] = []
    for quad in _vocabulary_quads():
        if isinstance(quad.subject, ox.NamedNode):
            _note(quad.subject.value, quad.predicate.value, quad.object, texts, units, ontologies)
    titles = {_closed(ns): _title(ns, texts) for ns in ontologies}
    by_iri = {iri: _term(iri, texts, units) for iri in {iri for iri, _ in texts} | set(units)}
    return Terms(by_iri, titles)


def _note(
    s: str,
    p: str,
    o: object,
    texts: dict[tuple[str, str], list[ox.Literal]],
    units: dict[str, str],
    ontologies: list[str],
) -> None:
    """Keep what one statement says of a term: a text, a unit, or that it is a vocabulary."""
    if isinstance(o, ox.Literal) and p in _TEXTS:
        texts.setdefault((s, p), []).append(o)
    elif p == _QUDT_UNIT and isinstance(o, ox.NamedNode):
        units[s] = o.value
    elif p == _TYPE and o == ox.NamedNode(_OWL_ONTOLOGY):
        ontologies.append(s)


def _closed(ns: str) -> str:
    return ns if ns.endswith(("#", "/")) else ns + "#"


def _title(ns: str, texts: dict[tuple[str, str], list[ox.Literal]]) -> str:
    return _english(texts.get((ns, _DCT + "title"), []) or texts.get((ns, _RDFS + "label"), []))


def _term(iri: str, texts: dict[tuple[str, str], list[ox.Literal]], units: dict[str, str]) -> Term:
    label = _english(texts.get((iri, _RDFS + "label"), []))
    return Term(iri, label, _english(texts.get((iri, _RDFS + "comment"), [])), units.get(iri, ""))


def humane(iri: str) -> str:
    """A readable name from an IRI's local part: ``thermalResistance`` -> "thermal resistance"."""
    local = iri[max(iri.rfind("#"), iri.rfind("/")) + 1 :]
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", local).replace("_", " ")
    return spaced[:1].lower() + spaced[1:] if spaced[1:2].islower() else spaced


def unit_symbol(unit_iri: str, curie: str) -> str:
    """``m²·K/W`` for ``unit:M2-K-PER-W``; the prefixed name for units not listed."""
    if unit_iri.startswith(_UNIT):
        return _SYMBOLS.get(unit_iri[len(_UNIT) :], curie)
    return curie


def best_label(triples: list[ox.Triple], subject: ox.NamedNode | ox.BlankNode) -> str:
    """The best name of ``subject`` among ``triples`` (rdfs:label first), or ''."""
    found: dict[str, str] = {}
    for t in triples:
        if t.subject == subject and isinstance(t.object, ox.Literal) and t.predicate.value in LABELS:
            found.setdefault(t.predicate.value, t.object.value)
    return next((found[p] for p in LABELS if p in found), "")


@cache
def term_triples() -> dict[str, tuple[ox.Triple, ...]]:
    """Every triple of ``vocab/``'s vocabularies, by subject IRI (blank nodes under the
    subject that names them): what ``/vocab/{term}`` serves."""
    out: dict[str, list[ox.Triple]] = {}
    blank: dict[ox.BlankNode, list[ox.Triple]] = {}
    for quad in _vocabulary_quads():
        if isinstance(quad.subject, ox.NamedNode):
            out.setdefault(quad.subject.value, []).append(quad.triple)
        elif isinstance(quad.subject, ox.BlankNode):
            blank.setdefault(quad.subject, []).append(quad.triple)
    for triples in out.values():
        nodes = [t.object for t in triples if isinstance(t.object, ox.BlankNode)]
        triples.extend(b for node in nodes for b in blank.get(node, []))
    return {iri: tuple(triples) for iri, triples in out.items()}
