"""HTML with RDFa: a page people can read that carries the same triples as the Turtle.

Each subject is a section titled by its best label (``rdfs:label`` first), its
properties grouped by vocabulary and named by ``vocab/``'s labels, quantities shown with
their units. Every triple is in the markup as RDFa 1.1 attributes (``about``,
``property``, ``resource``, ``content``, ``datatype``, ``lang``; full IRIs, so no prefix
can be misread), which an RDFa processor turns back into exactly the triples served
(https://www.w3.org/TR/rdfa-core/ §7.5).

Links work wherever the node runs: IRIs in the node's namespace link to its own paths
(a fragment stays a fragment, a query stays a query), vocabulary terms that ``vocab/``
declares link to the node's own ``/vocab/`` pages, other IRIs link to themselves. The
workbench renders the same document with a ``Linker`` of its own (``gateway.web``).
Templates are Jinja2 with autoescaping: everything shown is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol
from urllib.parse import quote

import jinja2
import pyoxigraph as ox

from gateway.formats import Page
from gateway.formats.terms import best_label, humane, load_terms, unit_symbol
from gateway.vocab import Vocab

__all__ = [
    "Document",
    "Linker",
    "NodeLinker",
    "Section",
    "build_document",
    "environment",
    "href",
    "render",
    "with_format",
]

_RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
_QUDT = "http://qudt.org/schema/qudt/"
_NUMERIC, _UNIT = _QUDT + "numericValue", _QUDT + "unit"
_HYDRA_VIEW = "http://www.w3.org/ns/hydra/core#view"
#: characters an IRI path or query may keep as they are in an href
_SAFE = "/:@!$&'()*+,;=-._~%?"


class Linker(Protocol):
    """Where a browser goes for an IRI on a page: a resource, or a vocabulary term."""

    def resource(self, iri: str) -> str | None: ...

    def term(self, iri: str) -> str | None: ...


def href(iri: str, namespace: str) -> str:
    """This node's path for one of its own IRIs (query and fragment kept), else ``iri``."""
    if not iri.startswith(namespace):
        return iri
    rest, hash_, fragment = iri[len(namespace) :].partition("#")
    return "/" + quote(rest, safe=_SAFE) + (hash_ + quote(fragment, safe=_SAFE) if hash_ else "")


@dataclass(frozen=True, slots=True)
class NodeLinker:
    """The public pages' links: own IRIs to the node's paths, declared terms to ``/vocab/``."""

    vocab: Vocab
    namespace: str

    def resource(self, iri: str) -> str | None:
        return href(iri, self.namespace)

    def term(self, iri: str) -> str | None:
        return term_href(self.vocab, iri) or self.resource(iri)


def term_href(vocab: Vocab, iri: str) -> str | None:
    """``/vocab/dsgo:energyLabel`` for a term ``vocab/`` declares; None for others."""
    if iri not in vocab.terms:
        return None
    return "/vocab/" + quote(vocab.curie(iri), safe=":")


def with_format(url: str, name: str) -> str:
    """``url`` asking for format ``name`` (its fragment dropped, its query kept)."""
    base = url.partition("#")[0]
    return base + ("&" if "?" in base else "?") + "format=" + name


@dataclass(slots=True)
class Value:
    """One object of a property, ready for the template."""

    kind: str  # "iri" | "literal" | "quantity" | "node"
    predicate: str
    text: str
    #: iri: the IRI; node and quantity: "_:id"
    resource: str = ""
    href: str | None = None
    lexical: str = ""
    datatype: str = ""
    lang: str | None = None
    #: quantity: the number and its unit
    number: Value | None = None
    unit: Value | None = None


@dataclass(slots=True)
class Row:
    predicate: str
    label: str
    curie: str
    href: str | None
    comment: str
    values: list[Value]


@dataclass(slots=True)
class Group:
    title: str
    rows: list[Row]


@dataclass(slots=True)
class Section:
    """One subject: ``about`` is its IRI or ``_:id``; ``anchor`` its id on the page."""

    about: str
    anchor: str | None
    title: str
    href: str | None
    types: list[Value]
    groups: list[Group]
    is_blank: bool = False


@dataclass(slots=True)
class Document:
    title: str
    subject: str
    sections: list[Section]
    notes: tuple[str, ...]
    nav: list[tuple[str, str]]
    formats: list[tuple[str, str]] = field(default_factory=list)
    empty: bool = False


class _Context:
    """What building one document needs: the vocabularies, the linker, the page's document."""

    def __init__(
        self,
        triples: Sequence[ox.Triple],
        vocab: Vocab,
        linker: Linker,
        subject: str,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.triples = list(triples)
        self.labels = labels or {}
        self.vocab, self.linker, self.terms = vocab, linker, load_terms()
        self.document = subject.partition("#")[0]
        self.by_subject: dict[ox.NamedNode | ox.BlankNode, list[ox.Triple]] = {}
        for t in self.triples:
            if isinstance(t.subject, ox.NamedNode | ox.BlankNode):
                self.by_subject.setdefault(t.subject, []).append(t)
        self.quantities = {s for s, ts in self.by_subject.items() if _is_quantity(s, ts)}

    def link(self, iri: str) -> str | None:
        """An anchor for a subject shown on this page under its fragment, else the linker's
        address (a vocabulary term's page, or the resource's)."""
        doc, hash_, fragment = iri.partition("#")
        if hash_ and doc == self.document and ox.NamedNode(iri) in self.by_subject:
            return "#" + quote(fragment, safe=_SAFE)
        return self.linker.term(iri)


def _is_quantity(subject: ox.NamedNode | ox.BlankNode, triples: list[ox.Triple]) -> bool:
    """A blank node holding a number and its unit (QUDT), shown inline as ``0.36 m²·K/W``."""
    if not isinstance(subject, ox.BlankNode):
        return False
    predicates = sorted(t.predicate.value for t in triples)
    return predicates == [_NUMERIC, _UNIT] and isinstance(
        next(t.object for t in triples if t.predicate.value == _UNIT), ox.NamedNode
    )


def _literal(ctx: _Context, predicate: str, lit: ox.Literal) -> Value:
    datatype = lit.datatype.value
    if lit.language:
        return Value("literal", predicate, lit.value, lexical=lit.value, lang=lit.language)
    if datatype == _XSD_STRING:
        return Value("literal", predicate, lit.value, lexical=lit.value, lang="")
    term = ctx.terms.get(predicate)
    text = lit.value
    if term is not None and term.unit:
        text += " " + unit_symbol(term.unit, ctx.vocab.curie(term.unit))
    return Value("literal", predicate, text, lexical=lit.value, datatype=datatype)


def _value(ctx: _Context, predicate: str, obj: ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple) -> Value:
    if isinstance(obj, ox.Literal):
        return _literal(ctx, predicate, obj)
    if isinstance(obj, ox.NamedNode):
        return _iri_value(ctx, predicate, obj.value)
    if isinstance(obj, ox.BlankNode):
        if obj in ctx.quantities:
            return _quantity(ctx, predicate, obj)
        return Value("node", predicate, "(details below)", "_:" + obj.value, "#" + _blank_anchor(obj))
    return Value("literal", predicate, str(obj), lexical=str(obj))


def _iri_value(ctx: _Context, predicate: str, iri: str) -> Value:
    if predicate == _RDF_TYPE:
        term = ctx.terms.get(iri)
        return Value(
            "iri", predicate, (term and term.label) or ctx.vocab.curie(iri), iri, ctx.linker.term(iri)
        )
    label = _known_label(ctx, iri)
    return Value("iri", predicate, label or ctx.vocab.curie(iri), iri, ctx.link(iri))


def _known_label(ctx: _Context, iri: str) -> str:
    if iri in ctx.labels:
        return ctx.labels[iri]
    node = ox.NamedNode(iri)
    if node in ctx.by_subject:
        return best_label(ctx.by_subject[node], node)
    term = ctx.terms.get(iri)
    return term.label if term else ""


def _quantity(ctx: _Context, predicate: str, node: ox.BlankNode) -> Value:
    triples = ctx.by_subject[node]
    number = next(t.object for t in triples if t.predicate.value == _NUMERIC)
    unit = next(t.object for t in triples if t.predicate.value == _UNIT)
    assert isinstance(unit, ox.NamedNode)
    num = _value(ctx, _NUMERIC, number)
    sym = unit_symbol(unit.value, ctx.vocab.curie(unit.value))
    unit_value = Value("iri", _UNIT, sym, unit.value, ctx.linker.term(unit.value))
    return Value("quantity", predicate, f"{num.text} {sym}", "_:" + node.value, number=num, unit=unit_value)


def _blank_anchor(node: ox.BlankNode) -> str:
    return "b-" + node.value


def _rows(ctx: _Context, triples: list[ox.Triple]) -> list[Group]:
    """The non-type properties of one subject, grouped by vocabulary, labelled from vocab/."""
    by_predicate: dict[str, list[Value]] = {}
    for t in triples:
        if t.predicate.value != _RDF_TYPE:
            by_predicate.setdefault(t.predicate.value, []).append(_value(ctx, t.predicate.value, t.object))
    groups: dict[str, list[Row]] = {}
    for predicate, values in by_predicate.items():
        term = ctx.terms.get(predicate)
        curie = ctx.vocab.curie(predicate)
        label = (term.label if term else "") or (humane(predicate) if curie != predicate else curie)
        row = Row(predicate, label, curie, ctx.linker.term(predicate), term.comment if term else "", values)
        groups.setdefault(_namespace(predicate), []).append(row)
    return [
        Group(_group_title(ctx, ns), sorted(rows, key=lambda r: (r.label.lower(), r.predicate)))
        for ns, rows in sorted(groups.items(), key=lambda item: _group_order(ctx, item[0]))
    ]


def _namespace(iri: str) -> str:
    cut = max(iri.rfind("#"), iri.rfind("/"))
    return iri[: cut + 1]


def _group_title(ctx: _Context, namespace: str) -> str:
    return ctx.terms.title(namespace) or next(
        (p for p, ns in ctx.vocab.prefixes.items() if ns == namespace), namespace
    )


def _group_order(ctx: _Context, namespace: str) -> tuple[int, str]:
    """Names first, then the vocabularies vocab/ defines, then the others."""
    if namespace == "http://www.w3.org/2000/01/rdf-schema#":
        return (0, "")
    return (1 if namespace in ctx.terms.titles else 2, _group_title(ctx, namespace).lower())


def _section(ctx: _Context, subject: ox.NamedNode | ox.BlankNode, triples: list[ox.Triple]) -> Section:
    types = [
        _iri_value(ctx, _RDF_TYPE, t.object.value)
        for t in triples
        if t.predicate.value == _RDF_TYPE and isinstance(t.object, ox.NamedNode)
    ]
    groups = _rows(ctx, triples)
    if isinstance(subject, ox.BlankNode):
        return Section("_:" + subject.value, _blank_anchor(subject), "", None, types, groups, True)
    iri = subject.value
    doc, hash_, fragment = iri.partition("#")
    anchor = fragment if hash_ and doc == ctx.document else None
    title = best_label(triples, subject) or ctx.vocab.curie(iri)
    return Section(iri, anchor, title, ctx.linker.resource(iri), types, groups)


def build_document(
    triples: Sequence[ox.Triple],
    vocab: Vocab,
    linker: Linker,
    subject: str,
    title: str = "",
    notes: tuple[str, ...] = (),
    labels: Mapping[str, str] | None = None,
) -> Document:
    """The sections of a page about ``subject`` (first) and every other subject in ``triples``;
    ``labels`` name resources the triples link to (link texts)."""
    ctx = _Context(triples, vocab, linker, subject, labels)
    main = ox.NamedNode(subject)
    order = sorted(ctx.by_subject, key=lambda s: (s != main, isinstance(s, ox.BlankNode)))
    sections = [_section(ctx, s, ctx.by_subject[s]) for s in order if s not in ctx.quantities]
    curie = vocab.curie(subject)
    label = best_label(ctx.by_subject.get(main, []), main)
    heading = title if title and title != curie else (label or curie)
    if sections and sections[0].about == subject:
        sections[0].title = heading
    return Document(heading, subject, sections, notes, [], empty=not triples)


@cache
def environment() -> jinja2.Environment:
    """The format's templates (``gateway/formats/templates``), built on first use."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.formats", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _self_href(triples: Sequence[ox.Triple], page: Page, linker: Linker) -> str:
    """The page's own address: a collection page's view, else its subject's document."""
    subject = ox.NamedNode(page.subject)
    for t in triples:
        if t.predicate.value == _HYDRA_VIEW and isinstance(t.object, ox.NamedNode) and t.subject == subject:
            return linker.resource(t.object.value) or ""
    return linker.term(page.subject) or ""


def render(triples: Sequence[ox.Triple], page: Page) -> bytes:
    """The ``text/html`` format of a resource, a collection page or the node's description."""
    linker = NodeLinker(page.vocab, page.namespace)
    doc = build_document(triples, page.vocab, linker, page.subject, page.title, page.notes)
    doc.nav = [(rel, url) for rel, url in page.links]
    own = _self_href(triples, page, linker)
    doc.formats = [(label, with_format(own, name)) for label, name in _FORMATS]
    return environment().get_template("page.html").render(doc=doc).encode()


_FORMATS = (("Turtle", "turtle"), ("JSON-LD", "jsonld"), ("N-Triples", "ntriples"))
