"""The project's vocabularies and JSON-LD context, read from ``vocab/`` (package data).

``vocab/`` is the only place JSON-LD contexts come from: the node's own context
(``context.jsonld``, published as ``CONTEXT_IRI``) compacts every JSON-LD answer, and
its prefixes make Turtle and HTML readable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pyoxigraph as ox

__all__ = ["CONTEXT_IRI", "DSGO", "Vocab", "load_vocab", "vocab_dir"]

CONTEXT_IRI = "https://vocab.dsgo.example/context.jsonld"
DSGO = "https://vocab.dsgo.example/def#"


@dataclass(frozen=True, slots=True)
class Vocab:
    #: prefix -> namespace IRI, from the project's context
    prefixes: dict[str, str]
    #: the project's context document ({"@context": {...}})
    context: dict[str, Any]
    #: every context document that JSON-LD sources may name, by IRI
    contexts: dict[str, Any]
    #: classes and properties declared by the vocabularies in vocab/
    terms: frozenset[str] = frozenset()
    #: namespaces vocab/ defines in full: a term in them that is not declared is unknown
    closed: tuple[str, ...] = ()

    def known(self, iri: str) -> bool:
        """False only for an undeclared term in a namespace vocab/ defines in full."""
        return iri in self.terms or not any(iri.startswith(ns) for ns in self.closed)

    def curie(self, iri: str) -> str:
        """The shortest ``prefix:local`` form of ``iri``, or ``iri`` itself."""
        best = iri
        for prefix, ns in self.prefixes.items():
            if iri.startswith(ns) and len(iri) > len(ns):
                candidate = f"{prefix}:{iri[len(ns) :]}"
                if len(candidate) < len(best) or (len(candidate) == len(best) and candidate < best):
                    best = candidate
        return best

    def expand(self, name: str) -> str | None:
        """The IRI of ``prefix:local`` (or of an absolute IRI); ``None`` if unknown."""
        if name.startswith(("http://", "https://", "urn:")):
            return name
        prefix, sep, local = name.partition(":")
        if sep and prefix in self.prefixes:
            return self.prefixes[prefix] + local
        return None


def vocab_dir() -> Path:
    """The vocabulary files, package data (``vocab/`` of the source tree, ``gateway/_vocab`` of
    an installed wheel): found the same way from any working directory."""
    return Path(str(resources.files("gateway._vocab")))


@cache
def load_vocab(folder: Path | None = None) -> Vocab:
    folder = folder or vocab_dir()
    context = json.loads((folder / "context.jsonld").read_text(encoding="utf-8"))
    prefixes = {
        term: value
        for term, value in context["@context"].items()
        if isinstance(value, str) and value.endswith(("#", "/"))
    }
    terms: set[str] = set()
    closed: set[str] = set()
    for ttl in sorted(folder.glob("*.ttl")):
        if ttl.name != "shapes.ttl":
            _declarations(ttl, terms, closed)
    return Vocab(prefixes, context, {CONTEXT_IRI: context}, frozenset(terms), tuple(sorted(closed)))


def _declarations(ttl: Path, terms: set[str], closed: set[str]) -> None:
    """Add the classes and properties ``ttl`` declares to ``terms``, and the namespaces
    of the ontologies it holds (defined in full there) to ``closed``."""
    for quad in ox.parse(path=str(ttl)):
        if quad.predicate.value != _RDF_TYPE:
            continue
        if quad.object.value in _DECLARATIONS:
            terms.add(quad.subject.value)
        elif quad.object.value == _OWL + "Ontology":
            ns = quad.subject.value
            closed.add(ns if ns.endswith(("#", "/")) else ns + "#")


_RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
_OWL = "http://www.w3.org/2002/07/owl#"
_DECLARATIONS = {
    _OWL + "Class",
    _OWL + "ObjectProperty",
    _OWL + "DatatypeProperty",
    _OWL + "AnnotationProperty",
    "http://www.w3.org/2000/01/rdf-schema#Class",
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#Property",
}
