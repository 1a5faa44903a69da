"""The triples a resource page shows: this node's own through ``Access``, another party's
read live through ``Federation`` with this node's token, the owner's policy applied.

A page is a function of what the person's party may see: the resource's view, the links
to it in this node's view of its data ("incoming"), and the labels of the resources it
links to, as far as that view holds them. A collection (``{namespace}collections/{class}``)
is its members with their labels, a page at a time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pyoxigraph as ox

from gateway.federation.walk import Federation, Owner
from gateway.formats.terms import LABELS
from gateway.node import Built, Node
from gateway.policy.model import Grant
from gateway.policy.notice import Withheld
from gateway.store.local import RDF_TYPE

__all__ = [
    "HYDRA",
    "PAGE_SIZE",
    "Reading",
    "collection_parts",
    "label_triples",
    "local_collection",
    "local_resource",
    "remote_resource",
]

HYDRA = "http://www.w3.org/ns/hydra/core#"
PAGE_SIZE = 50
_MEMBER, _TOTAL, _VIEW = (ox.NamedNode(HYDRA + k) for k in ("member", "totalItems", "view"))
_XSD_INT = ox.NamedNode("http://www.w3.org/2001/XMLSchema#integer")
_MAX_INCOMING = 200


@dataclass(slots=True)
class Reading:
    """What was read for one page, and from whom."""

    iri: str
    triples: list[ox.Triple]
    owner: Owner | None
    status: str = "ok"
    withheld: int = 0
    seconds: float = 0.0
    told: Withheld = field(default_factory=Withheld)  # which fields the owner said it withheld
    built: Built | None = None
    extra: list[ox.Triple] = field(default_factory=list)


def _view(node: Node, grant: Grant) -> ox.Store | None:
    """The party's whole view (for incoming links and labels); none on a remote store."""
    return node.access.view(grant) if node.remote is None else None


def label_triples(view: ox.Store | None, iris: set[str]) -> list[ox.Triple]:
    """The label triples of ``iris`` that the view holds (for link texts)."""
    if view is None:
        return []
    out: list[ox.Triple] = []
    for iri in sorted(iris):
        for predicate in LABELS:
            out.extend(
                q.triple for q in view.quads_for_pattern(ox.NamedNode(iri), ox.NamedNode(predicate), None)
            )
    return out


def _incoming(view: ox.Store | None, iri: str) -> list[ox.Triple]:
    if view is None:
        return []
    quads = view.quads_for_pattern(None, None, ox.NamedNode(iri), None)
    out = []
    for quad in quads:
        out.append(quad.triple)
        if len(out) >= _MAX_INCOMING:
            break
    return out


def _linked(triples: list[ox.Triple]) -> set[str]:
    """The resources ``triples`` name, whose labels make link texts."""
    out: set[str] = set()
    for t in triples:
        if t.predicate != RDF_TYPE and isinstance(t.object, ox.NamedNode):
            out.add(t.object.value)
        if isinstance(t.subject, ox.NamedNode):
            out.add(t.subject.value)
    return out


def local_resource(node: Node, grant: Grant, iri: str) -> Built | None:
    """This node's resource as ``grant`` sees it, with the links to it and link labels."""
    decision = node.access.resource(grant, iri)
    if decision is None:
        return None
    view = _view(node, grant)
    incoming = _incoming(view, iri)
    extra = incoming + label_triples(view, _linked(decision.triples + incoming) - {iri})
    from gateway.formats import Page

    page = Page(node.vocab, node.namespace, iri)
    return Built(
        [*decision.triples, *extra],
        page,
        (iri,),
        decision.released,
        decision.withheld,
        decision.rules,
        decision.purposes,
    )


def collection_parts(iri: str) -> tuple[str, int] | None:
    """(class name, page) of a collection IRI's path ``collections/{class}?page=N``."""
    parts = urlsplit(iri)
    path = unquote(parts.path)
    if "/collections/" not in path:
        return None
    name = path.split("/collections/", 1)[1]
    pages = parse_qs(parts.query).get("page", ["1"])
    page = int(pages[0]) if pages[0].isdigit() and 0 < int(pages[0]) < 10**9 else 1
    return name, page


def local_collection(node: Node, grant: Grant, name: str, page: int) -> Built | None:
    """A page of this node's collection of class ``name``, as the API gives it, with labels."""
    from gateway.formats import Page

    class_iri = node.vocab.expand(name)
    if class_iri is None:
        return None
    members = node.access.members(grant, class_iri, node.namespace)
    last = max(1, -(-len(members) // PAGE_SIZE))
    if page > last:
        return None
    base = node.namespace + "collections/" + quote(name, safe=":")
    coll, view = ox.NamedNode(base), ox.NamedNode(f"{base}?page={page}")
    shown = members[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    triples = [
        ox.Triple(coll, RDF_TYPE, ox.NamedNode(HYDRA + "Collection")),
        ox.Triple(coll, _TOTAL, ox.Literal(str(len(members)), datatype=_XSD_INT)),
        ox.Triple(coll, _VIEW, view),
        *(
            ox.Triple(view, ox.NamedNode(HYDRA + rel), ox.NamedNode(f"{base}?page={n}"))
            for rel, n in _pages(page, last)
        ),
        *(ox.Triple(coll, _MEMBER, ox.NamedNode(m)) for m in shown),
    ]
    triples += label_triples(_view(node, grant), set(shown))
    title = f"{name}: {len(members)} resources"
    return Built(
        triples, Page(node.vocab, node.namespace, base, title), tuple(shown), frozenset(), 0, *grant.permits()
    )


def _pages(page: int, last: int) -> list[tuple[str, int]]:
    links = [("first", 1), ("last", last)]
    if page > 1:
        links.append(("previous", page - 1))
    if page < last:
        links.append(("next", page + 1))
    return links


async def _member_labels(federation: Federation, triples: list[ox.Triple]) -> list[ox.Triple]:
    """A collection's members' labels, read from their owners (a batch per owner)."""
    members = [
        t.object.value for t in triples if t.predicate == _MEMBER and isinstance(t.object, ox.NamedNode)
    ]
    if not members:
        return []
    docs = await federation.read_many(members)
    wanted = {ox.NamedNode(m) for m in members}
    return [t for ts in docs.values() for t in ts if t.subject in wanted and t.predicate.value in LABELS]


async def remote_resource(federation: Federation, node: Node, grant: Grant, iri: str) -> Reading:
    """Another party's resource, read live from its node; a collection's members' labels
    in one more request (a batch); the links to it from this node's own data."""
    read = await federation.read(iri)
    reading = Reading(read.iri, read.triples, read.owner, read.status, read.withheld, read.seconds, read.told)
    if read.status != "ok":
        return reading
    reading.extra += await _member_labels(federation, read.triples)
    view = await asyncio.to_thread(_view, node, grant)
    reading.extra += _incoming(view, read.iri)
    named = _linked(read.triples) | _linked(reading.extra)
    reading.extra += label_triples(view, named - {read.iri})
    return reading
