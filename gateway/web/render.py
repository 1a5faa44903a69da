"""A resource page's body: the resource as the HTML format shows it (RDFa included), the
links to it, and a collection's members, with links that stay in the workbench.

Every IRI in a namespace of the federation (this node's, and those the registry lists)
opens as a workbench page, read through this node; vocabulary terms open the node's
``/vocab/`` pages; other IRIs link to themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

import jinja2
import pyoxigraph as ox

from gateway.formats.html import build_document, term_href
from gateway.formats.terms import LABELS, best_label, humane, load_terms
from gateway.vocab import Vocab
from gateway.web.reading import HYDRA, collection_parts

__all__ = ["WorkbenchLinker", "fragment", "resource_href", "value_of"]

_COLLECTION = ox.NamedNode(HYDRA + "Collection")
_RDF_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")


def value_of(term: object) -> str:
    """The lexical value of an RDF term (an IRI, a blank node's id, a literal's text)."""
    if isinstance(term, ox.NamedNode | ox.BlankNode | ox.Literal):
        return term.value
    return str(term)


def resource_href(iri: str) -> str:
    """The workbench page of ``iri`` (its fragment kept as the page's anchor)."""
    doc, hash_, fragment = iri.partition("#")
    return "/workbench/resource?iri=" + quote(doc, safe=":/") + (hash_ + quote(fragment) if hash_ else "")


@dataclass(frozen=True, slots=True)
class WorkbenchLinker:
    vocab: Vocab
    #: the namespaces of the federation, this node's own first
    namespaces: tuple[str, ...]

    def resource(self, iri: str) -> str | None:
        if any(iri.startswith(ns) for ns in self.namespaces):
            return resource_href(iri)
        return iri

    def term(self, iri: str) -> str | None:
        return term_href(self.vocab, iri) or self.resource(iri)


@dataclass(frozen=True, slots=True)
class Link:
    """A resource named on the page: its text, where it opens, and how it is linked."""

    text: str
    href: str | None
    predicate: str
    iri: str


def _in_document(term: object, doc: str) -> bool:
    if isinstance(term, ox.BlankNode):
        return True
    return isinstance(term, ox.NamedNode) and term.value.partition("#")[0] == doc


def _split(triples: Sequence[ox.Triple], iri: str) -> tuple[list[ox.Triple], list[ox.Triple], dict[str, str]]:
    """(the document's own triples, the links to it from elsewhere, labels of others)."""
    doc = iri.partition("#")[0]
    own, incoming = [], []
    others: dict[ox.NamedNode, list[ox.Triple]] = {}
    for t in triples:
        if _in_document(t.subject, doc):
            own.append(t)
        elif t.object == ox.NamedNode(iri) or (isinstance(t.object, ox.NamedNode) and t.object.value == doc):
            incoming.append(t)
        elif isinstance(t.subject, ox.NamedNode) and t.predicate.value in LABELS:
            others.setdefault(t.subject, []).append(t)
    labels = {s.value: best_label(ts, s) for s, ts in others.items()}
    return own, incoming, labels


def _links(
    triples: list[ox.Triple], pick: str, labels: dict[str, str], linker: WorkbenchLinker
) -> list[Link]:
    """Named resources of ``triples`` (their subjects or objects), labelled where known."""
    out = []
    terms = load_terms()
    for t in triples:
        node = t.subject if pick == "subject" else t.object
        if isinstance(node, ox.NamedNode):
            term = terms.get(t.predicate.value)
            how = (term.label if term else "") or humane(t.predicate.value)
            text = labels.get(node.value) or linker.vocab.curie(node.value)
            out.append(Link(text, linker.resource(node.value), how, node.value))
    return sorted(out, key=lambda link: (link.text.lower(), link.iri))


def _about(own: list[ox.Triple], subject: ox.NamedNode, predicate: str) -> list[ox.Triple]:
    return [t for t in own if t.subject == subject and t.predicate.value == predicate]


def _collection(
    own: list[ox.Triple], iri: str, labels: dict[str, str], linker: WorkbenchLinker
) -> dict[str, object]:
    """A collection page: its size, its members, its paging links."""
    subject = ox.NamedNode(iri.partition("#")[0])
    total = "".join(value_of(t.object) for t in _about(own, subject, HYDRA + "totalItems")[:1])
    members = _links(_about(own, subject, HYDRA + "member"), "object", labels, linker)
    views = {t.object for t in _about(own, subject, HYDRA + "view")}
    paging = {
        t.predicate.value[len(HYDRA) :]: linker.resource(t.object.value)
        for t in own
        if t.subject in views and isinstance(t.object, ox.NamedNode)
    }
    return {
        "total": total,
        "members": members,
        "paging": paging,
        "title": _collection_title(iri, linker.vocab),
    }


def _collection_title(iri: str, vocab: Vocab) -> str:
    """ "Building (bot:Building)" for ``{namespace}collections/bot:Building?page=2``."""
    parts = collection_parts(iri)
    if parts is None:
        return vocab.curie(iri)
    name, page = parts
    term = load_terms().get(vocab.expand(name) or "")
    label = f"{term.label[:1].upper()}{term.label[1:]} ({name})" if term and term.label else name
    return label + (f", page {page}" if page > 1 else "")


def fragment(
    env: jinja2.Environment,
    triples: Sequence[ox.Triple],
    iri: str,
    linker: WorkbenchLinker,
    notes: tuple[str, ...] = (),
) -> str:
    """The body of the page about ``iri`` from what was read for it."""
    own, incoming, labels = _split(triples, iri)
    subject = ox.NamedNode(iri.partition("#")[0])
    is_collection = any(
        t.subject == subject and t.predicate == _RDF_TYPE and t.object == _COLLECTION for t in own
    )
    doc = build_document(own, linker.vocab, linker, iri, notes=notes, labels=labels)
    return env.get_template("fragment.html").render(
        doc=doc,
        incoming=_links(incoming, "subject", labels, linker),
        collection=_collection(own, iri, labels, linker) if is_collection else None,
    )
