"""``/vocab/{term}``: the vocabulary terms a node's pages use, served by the node itself.

``https://vocab.dsgo.example/def#energyLabel`` names no host that answers, so a page
links ``dsgo:energyLabel`` to ``/vocab/dsgo:energyLabel`` on the node that shows it:
the term's triples from ``vocab/`` (label, comment, unit, domain, range) in every
format. ``/vocab/`` lists the terms. Public, like the vocabulary files themselves.
"""

from __future__ import annotations

import pyoxigraph as ox
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import NotFound
from gateway.formats import Format, Page
from gateway.formats.terms import term_triples
from gateway.http.respond import chosen_format
from gateway.http.state import node_state
from gateway.node import etag_of
from gateway.vocab import Vocab

__all__ = ["INDEX", "vocabulary"]

#: the subject of the index page
INDEX = "urn:dsgo:vocab"
_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"


async def vocabulary(request: Request) -> Response:
    node = node_state(request).node
    name = request.path_params.get("term", "")
    fmt = chosen_format(request)
    iri = node.vocab.expand(name) if name else INDEX
    if iri is None or (iri != INDEX and iri not in node.vocab.terms):
        raise NotFound(f"no term {name!r} in this node's vocabularies; see /vocab/ for the terms")
    body = _rendered(node.vocab, node.namespace, iri, fmt)
    return Response(
        body,
        media_type=fmt.content_type,
        headers={"etag": etag_of(body), "vary": "Accept", "cache-control": "public, max-age=3600"},
    )


def _rendered(vocab: Vocab, namespace: str, iri: str, fmt: Format) -> bytes:
    """A term's page (or the index) in ``fmt``, rendered once: vocab/ does not change."""
    key = (id(vocab), namespace, iri, fmt.name)
    body = _BODIES.get(key)
    if body is None:
        body = _BODIES[key] = _render(vocab, namespace, iri, fmt)
    return body


#: rendered pages: terms x formats x nodes of this process, a few hundred at most
_BODIES: dict[tuple[int, str, str, str], bytes] = {}


def _render(vocab: Vocab, namespace: str, iri: str, fmt: Format) -> bytes:
    if iri == INDEX:
        triples = _index(vocab)
        title = "Vocabulary terms used on this node"
    else:
        triples = list(term_triples()[iri])
        title = vocab.curie(iri)
    return fmt.render(triples, Page(vocab, namespace, iri, title))


def _index(vocab: Vocab) -> list[ox.Triple]:
    everything = term_triples()
    out: list[ox.Triple] = []
    for term in sorted(vocab.terms):
        out.extend(t for t in everything.get(term, ()) if t.predicate == _TYPE or t.predicate.value == _LABEL)
    return out
