"""Turtle and N-Triples, serialised by pyoxigraph (microseconds for a resource)."""

from __future__ import annotations

from collections.abc import Sequence

import pyoxigraph as ox

from gateway.formats import Page

__all__ = ["ntriples", "turtle", "used_prefixes"]


def turtle(triples: Sequence[ox.Triple], page: Page) -> bytes:
    prefixes = used_prefixes(triples, page.vocab.prefixes)
    return ox.serialize(triples, format=ox.RdfFormat.TURTLE, prefixes=prefixes) or b""


def ntriples(triples: Sequence[ox.Triple], page: Page) -> bytes:
    return ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES) or b""


def used_prefixes(triples: Sequence[ox.Triple], prefixes: dict[str, str]) -> dict[str, str]:
    """Only the prefixes the triples use, so every answer stays small."""
    iris: set[str] = set()
    for t in triples:
        for term in (t.subject, t.predicate, t.object):
            if isinstance(term, ox.NamedNode):
                iris.add(term.value)
            elif isinstance(term, ox.Literal):
                iris.add(term.datatype.value)
    return {p: ns for p, ns in prefixes.items() if any(i.startswith(ns) for i in iris)}
