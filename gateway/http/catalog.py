"""The node's self-description: a VoID/DCAT dataset per source, classes, counts, formats.

Served at ``/`` and ``/.well-known/void`` in every format, so both people and
crawlers learn what the node publishes and where its collections are.

A node on a remote SPARQL store (``gateway.store.remote``) gives no ``void:triples``
(counting it would mean reading the whole store); its class counts, like every count,
come from ``Access.class_counts``.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import pyoxigraph as ox
from starlette.requests import Request
from starlette.responses import Response

from gateway.formats import FORMATS, Page
from gateway.http.auth import reader
from gateway.http.delegation import grant_of
from gateway.http.openapi import EVIDENCE, FORMAT, Operation, describe, rdf
from gateway.http.respond import audit, chosen_format, send
from gateway.http.state import node_state
from gateway.node import Built, Node
from gateway.policy.model import Grant
from gateway.store.local import RDF_TYPE

__all__ = ["WELL_KNOWN", "catalog", "describe_node"]


WELL_KNOWN = "/.well-known/void"
_VOID, _DCAT, _DCT = (
    "http://rdfs.org/ns/void#",
    "http://www.w3.org/ns/dcat#",
    "http://purl.org/dc/terms/",
)
_RDFS_SEEALSO = ox.NamedNode("http://www.w3.org/2000/01/rdf-schema#seeAlso")
_RDFS_COMMENT = ox.NamedNode("http://www.w3.org/2000/01/rdf-schema#comment")
_INT = ox.NamedNode("http://www.w3.org/2001/XMLSchema#integer")
_DATETIME = ox.NamedNode("http://www.w3.org/2001/XMLSchema#dateTime")


def _n(ns: str, local: str) -> ox.NamedNode:
    return ox.NamedNode(ns + local)


def _int(n: int) -> ox.Literal:
    return ox.Literal(str(n), datatype=_INT)


def describe_node(node: Node, grant: Grant) -> Built:
    """The description as ``grant`` sees the data: counts are of the caller's view."""
    ns = node.namespace
    doc = ns + WELL_KNOWN.lstrip("/")
    dataset = ox.NamedNode(doc + "#dataset")
    T = ox.Triple
    out = [
        T(dataset, RDF_TYPE, _n(_VOID, "Dataset")),
        T(dataset, RDF_TYPE, _n(_DCAT, "Dataset")),
        T(dataset, _n(_DCT, "title"), ox.Literal(f"Building data of {node.settings.name}")),
        T(dataset, _n(_DCT, "publisher"), ox.NamedNode(doc + "#publisher")),
        T(
            ox.NamedNode(doc + "#publisher"),
            _n(_DCT, "identifier"),
            ox.Literal(node.settings.party_id),
        ),
        T(ox.NamedNode(doc + "#publisher"), _n(_DCT, "title"), ox.Literal(node.settings.name)),
        T(dataset, _n(_VOID, "uriSpace"), ox.Literal(ns)),
    ]
    if node.remote is None:
        out.append(T(dataset, _n(_VOID, "triples"), _int(node.access.triple_count(grant))))
    for fmt in FORMATS:
        dist = ox.NamedNode(f"{doc}#distribution-{fmt.name}")
        out += [
            T(dataset, _n(_DCAT, "distribution"), dist),
            T(dist, RDF_TYPE, _n(_DCAT, "Distribution")),
            T(dist, _n(_DCAT, "mediaType"), ox.Literal(fmt.media_type)),
            T(
                dist,
                _n(_VOID, "feature"),
                ox.NamedNode("http://www.w3.org/ns/formats/" + _FEATURE[fmt.name]),
            ),
        ]
    sources = node.store.sources().items() if grant.everything else ()  # operators' detail
    for name, state in sorted(sources):
        subset = ox.NamedNode(f"{doc}#source-{name}")
        out += [
            T(dataset, _n(_VOID, "subset"), subset),
            T(subset, RDF_TYPE, _n(_VOID, "Dataset")),
            T(subset, _n(_DCT, "title"), ox.Literal(name)),
            T(subset, _n(_DCT, "modified"), ox.Literal(_iso(state.loaded_at), datatype=_DATETIME)),
        ]
    counts, note = node.access.class_counts(grant, ns)
    if note:
        out.append(T(dataset, _RDFS_COMMENT, ox.Literal(note)))
    for i, (cls, count) in enumerate(sorted(counts.items())):
        part = ox.NamedNode(f"{doc}#class-{i}")
        curie = node.vocab.curie(cls)
        name = curie if curie != cls else cls
        out += [
            T(dataset, _n(_VOID, "classPartition"), part),
            T(part, _n(_VOID, "class"), ox.NamedNode(cls)),
            T(part, _n(_VOID, "entities"), _int(count)),
            T(part, _RDFS_SEEALSO, ox.NamedNode(ns + "collections/" + quote(name, safe=":"))),
        ]
    title = f"{node.settings.name} ({node.settings.party_id})"
    page = Page(node.vocab, ns, dataset.value, title, notes=(note,) if note else ())
    return Built(out, page, (), frozenset(), 0, *grant.permits())


_FEATURE = {"turtle": "Turtle", "jsonld": "JSON-LD", "ntriples": "N-Triples", "html": "RDFa"}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@describe(
    get=Operation(
        "The node's VoID/DCAT description: its dataset, distributions and class counts",
        "Counts are of the caller's view. Also served at /.well-known/void.",
        ("resources",),
        parameters=(FORMAT, EVIDENCE),
        replies={200: rdf("The description")},
        errors=(403, 406),
        operation_id="getCatalog",
    )
)
async def catalog(request: Request) -> Response:
    node = node_state(request).node
    caller = reader(request)
    grant = await grant_of(request, caller)
    fmt = chosen_format(request)
    rep = await node.represent_async(("catalog", grant.key), fmt, lambda: describe_node(node, grant))
    assert rep is not None
    audit(node.audit, request, caller, rep)
    return send(request, rep)
