"""Resources at their IRIs, and collections of the resources of a class.

``https://data.firm.example/id/building/42`` is served at ``/id/building/42``: the
path after the node's namespace. What a caller sees is decided by ``Access`` (the one
enforcement point); a resource of which it may see nothing is a 404 like one that does
not exist, and a partial view says, by whose policy, which fields the policy withholds
(``gateway.policy.notice``: from the caller's view and the policy, never the data). These
are the hot routes, so they are plain Starlette endpoints answering from the node's
representation cache, keyed by the caller's grant.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from urllib.parse import quote, unquote

import pyoxigraph as ox
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import BadRequest, NotFound
from gateway.formats import Page
from gateway.http.auth import reader
from gateway.http.delegation import grant_of
from gateway.http.iris import valid_iri
from gateway.http.openapi import EVIDENCE, FORMAT, Operation, Reply, describe, header, query, rdf
from gateway.http.respond import audit, chosen_format, send
from gateway.http.state import node_state
from gateway.node import Built, Node
from gateway.policy.model import Grant
from gateway.policy.notice import Notice, notice
from gateway.store.local import RDF_TYPE

__all__ = ["collection", "notice_for", "resource"]

_HYDRA = "http://www.w3.org/ns/hydra/core#"
_XSD_INT = ox.NamedNode("http://www.w3.org/2001/XMLSchema#integer")
PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000


def _node(request: Request) -> Node:
    node = node_state(request).node
    return node


_IF_NONE_MATCH = header("If-None-Match", "an ETag the caller holds: 304 if it is still current")


@describe(
    get=Operation(
        "A resource: the caller's view of the triples about one IRI in the node's namespace",
        "The path after the node's namespace. A resource the caller may see nothing of is a 404, "
        "the same as one that does not exist; a partial view says how many fields were withheld.",
        ("resources",),
        parameters=(FORMAT, EVIDENCE, _IF_NONE_MATCH),
        replies={200: rdf("The caller's view of the resource"), 304: Reply("The caller's copy is current")},
        # 405: a path whose first segment is another route's (/delegation, /logout) that takes no GET
        errors=(403, 404, 405, 406),
        operation_id="getResource",
    )
)
async def resource(request: Request) -> Response:
    node = _node(request)
    caller = reader(request)
    grant = await grant_of(request, caller)
    fmt = chosen_format(request)
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1").partition("?")[0].lstrip("/")
    for candidate in (path, unquote(path)) if "%" in path else (path,):
        iri = node.namespace + candidate
        rep = await node.represent_async(
            ("resource", grant.key, iri), fmt, partial(_describe, node, grant, iri)
        )
        if rep is not None:
            audit(node.audit, request, caller, rep)
            return send(request, rep)
    raise NotFound(f"no resource {node.namespace + path} on this node")


def _describe(node: Node, grant: Grant, iri: str) -> Built | None:
    # a string no IRI can be is no resource: the same 404 as a missing (or hidden) one
    decision = node.access.resource(grant, iri) if valid_iri(iri) else None
    if decision is None:
        return None
    told = notice_for(node, grant, iri, decision.triples)
    notes = (told.text(node.vocab.curie),) if told else ()
    page = Page(node.vocab, node.namespace, iri, node.vocab.curie(iri), notes=notes)
    return Built(
        decision.triples,
        page,
        (iri,),
        decision.released,
        decision.withheld,
        decision.rules,
        decision.purposes,
        told,
    )


def notice_for(node: Node, grant: Grant, iri: str, visible: Sequence[ox.Triple]) -> Notice | None:
    """What the caller is told of the fields it did not get: from its view and the
    owner's policy alone (non-interference), by whose policy."""
    owner = f"{node.settings.name} ({node.settings.party_id})"
    return notice(node.access.policies, grant, iri, visible, owner)


@describe(
    get=Operation(
        "The resources of a class that the caller may see, as a paged hydra:Collection",
        "The class as prefix:Name (bot:Building) or a full IRI; either spelling names one collection.",
        ("resources",),
        parameters=(
            query("page", "page number, from 1", {"type": "integer", "minimum": 1, "maximum": 10**9}),
            query("limit", "members per page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}),
            FORMAT,
            EVIDENCE,
            _IF_NONE_MATCH,
        ),
        replies={200: rdf("A page of the collection"), 304: Reply("The caller's copy is current")},
        errors=(400, 403, 404, 406),
        operation_id="getCollection",
    )
)
async def collection(request: Request) -> Response:
    node = _node(request)
    caller = reader(request)
    grant = await grant_of(request, caller)
    fmt = chosen_format(request)
    asked = request.path_params["cls"]
    class_iri = node.vocab.expand(asked)
    if class_iri is None or not valid_iri(class_iri):
        raise NotFound(f"unknown class {asked!r}; name it as prefix:Name (e.g. bot:Building) or a full IRI")
    name = node.vocab.curie(class_iri)  # one collection IRI, whichever spelling was asked for
    page = _int(request, "page", 1, 1, 10**9)
    limit = _int(request, "limit", PAGE_SIZE, 1, MAX_PAGE_SIZE)
    rep = await node.represent_async(
        ("collection", grant.key, class_iri, page, limit),
        fmt,
        lambda: _page(node, grant, name, class_iri, page, limit),
    )
    if rep is None:
        raise NotFound(f"page {page} of {name} is past its end")
    audit(node.audit, request, caller, rep)
    return send(request, rep)


def _int(request: Request, key: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(key)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"query parameter {key!r} must be an integer from {low} to {high}, got {raw!r}")
    return int(raw)


def _page(node: Node, grant: Grant, name: str, class_iri: str, page: int, limit: int) -> Built | None:
    members = node.access.members(grant, class_iri, node.namespace)
    last = max(1, -(-len(members) // limit))
    if page > last:
        return None
    path = "/collections/" + quote(name, safe=":")

    def url(n: int) -> str:
        return f"{path}?page={n}" + (f"&limit={limit}" if limit != PAGE_SIZE else "")

    coll = ox.NamedNode(node.namespace + path.lstrip("/"))
    view = ox.NamedNode(node.namespace + url(page).lstrip("/"))
    h = {
        k: ox.NamedNode(_HYDRA + k)
        for k in ("member", "totalItems", "view", "first", "last", "next", "previous")
    }
    triples = [
        ox.Triple(coll, RDF_TYPE, ox.NamedNode(_HYDRA + "Collection")),
        ox.Triple(coll, h["totalItems"], ox.Literal(str(len(members)), datatype=_XSD_INT)),
        ox.Triple(coll, h["view"], view),
        ox.Triple(view, RDF_TYPE, ox.NamedNode(_HYDRA + "PartialCollectionView")),
    ]
    links = [("first", url(1)), ("last", url(last))]
    if page > 1:
        links.append(("prev", url(page - 1)))
    if page < last:
        links.append(("next", url(page + 1)))
    for rel, target in links:
        predicate = h["previous" if rel == "prev" else rel]
        triples.append(ox.Triple(view, predicate, ox.NamedNode(node.namespace + target.lstrip("/"))))
    shown = members[(page - 1) * limit : page * limit]
    triples.extend(ox.Triple(coll, h["member"], ox.NamedNode(m)) for m in shown)
    title = f"{name}: {len(members)} resources, page {page} of {last}"
    page_info = Page(node.vocab, node.namespace, coll.value, title, tuple(links))
    return Built(triples, page_info, tuple(shown), frozenset({RDF_TYPE.value}), 0, *grant.permits())
