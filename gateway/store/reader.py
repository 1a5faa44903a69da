"""Reads over a fixed set of graphs of the node's store.

The served sources, the label graphs, or the data as it will be once a change is
switched in (``gateway.store.local``): each a ``Reader``, which gives the concise
bounded descriptions, the lookups policy conditions make, and the subjects of its graphs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyoxigraph as ox

__all__ = ["RDF_TYPE", "Reader", "Term", "select"]

RDF_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
Term = ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple
#: up to this many graphs a reader looks up in each (else in all and filters)
_PER_GRAPH = 8


def select(store: ox.Store, query: str) -> list[ox.QuerySolution]:
    """The rows of a SELECT, read out at once. pyoxigraph's solutions iterator may only be
    dropped on the thread that made it; one left in a frame of an exception (a store
    closed under a relabelling thread as the node stops) would be dropped wherever the
    exception ends up, which pyoxigraph reports as an error."""
    rows = store.query(query)
    try:
        assert isinstance(rows, ox.QuerySolutions)
        return list(rows)
    finally:
        del rows


class Reader:
    """Reads over a fixed set of graphs: the served sources, the label graphs, or the
    data as it will be once a change is switched in."""

    def __init__(self, store: ox.Store, graphs: frozenset[ox.NamedNode]) -> None:
        self.ox, self.graphs = store, graphs
        self._each = tuple(sorted(graphs, key=lambda g: g.value)) if len(graphs) <= _PER_GRAPH else ()

    def quads(
        self, s: ox.NamedNode | ox.BlankNode | None, p: ox.NamedNode | None, o: Term | None
    ) -> Iterator[ox.Quad]:
        """The quads matching (s, p, o) in these graphs: looked up graph by graph when
        they are few, so the store decodes nothing else (its label graphs hold a second
        copy of every triple), else in all graphs at once and filtered."""
        if self._each or not self.graphs:
            for graph in self._each:
                yield from self.ox.quads_for_pattern(s, p, o, graph)
            return
        graphs = self.graphs
        for q in self.ox.quads_for_pattern(s, p, o, None):
            if q.graph_name in graphs:
                yield q

    def describe(self, iri: str) -> list[ox.Triple]:
        """The concise bounded description of ``iri``: its triples and the blank nodes
        reached from them (subject-based CBD), without duplicates."""
        return self.description(ox.NamedNode(iri))

    def description(self, subject: ox.NamedNode) -> list[ox.Triple]:
        graphs = self.graphs
        direct = [q.triple for q in self.quads(subject, None, None)]
        if len(graphs) > 1:
            direct = list(dict.fromkeys(direct))  # a triple two sources hold, once
        return self.closed(direct)

    def closed(self, direct: list[ox.Triple]) -> list[ox.Triple]:
        """``direct`` and the triples of the blank nodes it reaches."""
        if not any(isinstance(t.object, ox.BlankNode) for t in direct):
            return direct
        out, seen = list(direct), set(direct)
        for quad in self._reached([t.object for t in direct]):
            triple = quad.triple
            if triple not in seen:
                seen.add(triple)
                out.append(triple)
        return out

    def quads_of(self, subject: ox.NamedNode) -> list[ox.Quad]:
        """The quads of ``subject``'s description as these graphs hold them."""
        out = list(self.quads(subject, None, None))
        return out + list(self._reached([q.object for q in out]))

    def _reached(self, objects: Iterable[object]) -> Iterator[ox.Quad]:
        """The quads of the blank nodes among ``objects`` and of those they reach, each once."""
        todo = [o for o in objects if isinstance(o, ox.BlankNode)]
        visited: set[ox.BlankNode] = set()
        while todo:
            node = todo.pop()
            if node in visited:
                continue
            visited.add(node)
            for quad in self.quads(node, None, None):
                if isinstance(quad.object, ox.BlankNode):
                    todo.append(quad.object)
                yield quad

    def roots(self, node: ox.BlankNode) -> set[ox.NamedNode]:
        """The named subjects whose descriptions reach blank node ``node``."""
        found: set[ox.NamedNode] = set()
        todo, visited = [node], set()
        while todo:
            current = todo.pop()
            if current in visited:
                continue
            visited.add(current)
            for quad in self.quads(None, None, current):
                if isinstance(quad.subject, ox.NamedNode):
                    found.add(quad.subject)
                elif isinstance(quad.subject, ox.BlankNode):
                    todo.append(quad.subject)
        return found

    def objects(self, subject: str, predicate: str) -> list[Term]:
        return [q.object for q in self.quads(ox.NamedNode(subject), ox.NamedNode(predicate), None)]

    def subjects(self, predicate: str, obj: str) -> list[str]:
        return [
            q.subject.value
            for q in self.quads(None, ox.NamedNode(predicate), ox.NamedNode(obj))
            if isinstance(q.subject, ox.NamedNode)
        ]

    def named_subjects(self) -> list[ox.NamedNode]:
        """Every IRI that is the subject of a triple in these graphs, each once (found by
        the store itself: only the subjects are read out)."""
        if not self.graphs:
            return []
        graphs = " ".join(str(g) for g in sorted(self.graphs, key=lambda g: g.value))
        pattern = f"VALUES ?g {{ {graphs} }} GRAPH ?g {{ ?s ?p ?o }} FILTER isIRI(?s)"
        rows = select(self.ox, f"SELECT DISTINCT ?s WHERE {{ {pattern} }}")
        return sorted((row[0] for row in rows), key=lambda n: n.value)

    def typed(self, classes: Iterable[str]) -> set[ox.NamedNode]:
        """The named subjects typed with any of ``classes``."""
        out: set[ox.NamedNode] = set()
        for cls in classes:
            out.update(
                q.subject
                for q in self.quads(None, RDF_TYPE, ox.NamedNode(cls))
                if isinstance(q.subject, ox.NamedNode)
            )
        return out
