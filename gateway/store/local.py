"""The node's graph: pyoxigraph, in memory or on disk, one named graph per source.

A source is replaced atomically: its new triples go into a fresh, not yet visible
graph, then one transaction on the ``urn:dsgo:meta`` graph points the source at it,
then the old graph is dropped. Readers only ever see whole versions. On disk, the meta
graph also remembers each source's fingerprint, so a restarted node serves at once and
re-reads only the sources that changed. The store knows nothing of HTTP or policies.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyoxigraph as ox

__all__ = ["RDF_TYPE", "SourceState", "Store"]

RDF_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
_META = ox.NamedNode("urn:dsgo:meta")
_SOURCE = "urn:dsgo:source:"
_M = "urn:dsgo:meta#"
_M_GRAPH, _M_FINGERPRINT = ox.NamedNode(_M + "graph"), ox.NamedNode(_M + "fingerprint")
_M_LOADED, _M_TRIPLES = ox.NamedNode(_M + "loadedAt"), ox.NamedNode(_M + "triples")
_SLICE = 5_000  # quads per bulk_extend call


@dataclass(frozen=True, slots=True)
class SourceState:
    """The version of a source that is being served."""

    name: str
    graph: ox.NamedNode
    fingerprint: str
    loaded_at: float  # Unix time
    triples: int


class Store:
    """One node's triples. Thread-safe: one writer at a time, readers never block."""

    def __init__(self, path: Path | None = None) -> None:
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._ox = ox.Store(str(path)) if path is not None else ox.Store()
        self._write = threading.Lock()
        self._states: dict[str, SourceState] = self._read_meta()
        self._graphs: frozenset[ox.NamedNode] = frozenset(s.graph for s in self._states.values())
        #: increases with every change; caches of derived data key on it
        self.generation = 0
        self._drop_orphans()

    # -- writing -------------------------------------------------------------------

    def replace_source(self, name: str, triples: Iterable[ox.Triple], fingerprint: str) -> SourceState:
        """Serve ``triples`` as the new version of source ``name``, atomically."""
        with self._write:
            graph = ox.NamedNode(f"{_SOURCE}{name}:{uuid.uuid4().hex}")
            quads = [ox.Quad(t.subject, t.predicate, t.object, graph) for t in triples]
            # invisible until the meta graph points at it; in slices, because bulk_extend
            # holds the GIL throughout (seconds for 100,000 quads on disk): between them
            # the node's other threads, and its event loop, serve the version in force
            for i in range(0, len(quads), _SLICE):
                self._ox.bulk_extend(quads[i : i + _SLICE])
            count = sum(1 for _ in self._ox.quads_for_pattern(None, None, None, graph))
            state = SourceState(name, graph, fingerprint, time.time(), count)
            self._swap(name, state)
            return state

    def remove_source(self, name: str) -> None:
        with self._write:
            self._swap(name, None)

    def touch_source(self, name: str, fingerprint: str) -> None:
        """Record that the source changed on disk but its triples did not."""
        with self._write:
            old = self._states[name]
            self._swap(name, SourceState(name, old.graph, fingerprint, old.loaded_at, old.triples))

    def _swap(self, name: str, state: SourceState | None) -> None:
        subject = ox.NamedNode(_SOURCE + name)
        update = f"DELETE WHERE {{ GRAPH {_META} {{ {subject} ?p ?o }} }}"
        if state is not None:
            update += (
                f"; INSERT DATA {{ GRAPH {_META} {{ {subject} {_M_GRAPH} {state.graph} ; "
                f"{_M_FINGERPRINT} {ox.Literal(state.fingerprint)} ; "
                f"{_M_LOADED} {ox.Literal(repr(state.loaded_at))} ; "
                f"{_M_TRIPLES} {ox.Literal(str(state.triples))} }} }}"
            )
        self._ox.update(update)  # one transaction: the switch is atomic
        old = self._states.get(name)
        states = dict(self._states)
        if state is None:
            states.pop(name, None)
        else:
            states[name] = state
        self._states = states
        self._graphs = frozenset(s.graph for s in states.values())
        self.generation += 1
        if old is not None and (state is None or old.graph != state.graph):
            self._ox.remove_graph(old.graph)
        if self.path is not None:
            self._ox.flush()

    def _read_meta(self) -> dict[str, SourceState]:
        states: dict[str, SourceState] = {}
        rows = self._ox.query(
            f"SELECT ?s ?g ?f ?l ?n WHERE {{ GRAPH {_META} {{ ?s {_M_GRAPH} ?g ; "
            f"{_M_FINGERPRINT} ?f ; {_M_LOADED} ?l ; {_M_TRIPLES} ?n }} }}"
        )
        assert isinstance(rows, ox.QuerySolutions)
        for row in rows:
            name = row["s"].value.removeprefix(_SOURCE)
            states[name] = SourceState(
                name, row["g"], row["f"].value, float(row["l"].value), int(row["n"].value)
            )
        return states

    def _drop_orphans(self) -> None:
        """Graphs left by a crash between loading and switching are not served; drop them."""
        for graph in list(self._ox.named_graphs()):
            if graph != _META and graph not in self._graphs:
                self._ox.remove_graph(graph)

    def close(self) -> None:
        if self.path is not None:
            self._ox.flush()
        del self._ox

    # -- reading -------------------------------------------------------------------

    def sources(self) -> dict[str, SourceState]:
        return self._states

    def source_triples(self, name: str) -> list[ox.Triple]:
        """The triples of the version of source ``name`` being served (none if none is)."""
        state = self._states.get(name)
        if state is None:
            return []
        return [q.triple for q in self._ox.quads_for_pattern(None, None, None, state.graph)]

    def graphs(self) -> frozenset[ox.NamedNode]:
        return self._graphs

    def describe(self, iri: str) -> list[ox.Triple]:
        """The concise bounded description of ``iri``: its triples and the blank nodes
        reached from them (subject-based CBD), without duplicates."""
        graphs = self._graphs
        seen: set[ox.Triple] = set()
        out: list[ox.Triple] = []
        todo: list[ox.NamedNode | ox.BlankNode] = [ox.NamedNode(iri)]
        visited: set[ox.NamedNode | ox.BlankNode] = set()
        while todo:
            node = todo.pop()
            if node in visited:
                continue
            visited.add(node)
            for quad in self._ox.quads_for_pattern(node, None, None, None):
                if quad.graph_name not in graphs:
                    continue
                triple = quad.triple
                if triple in seen:
                    continue
                seen.add(triple)
                out.append(triple)
                if isinstance(triple.object, ox.BlankNode):
                    todo.append(triple.object)
        return out

    def objects(
        self, subject: str, predicate: str
    ) -> list[ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple]:
        graphs = self._graphs
        return [
            q.object
            for q in self._ox.quads_for_pattern(ox.NamedNode(subject), ox.NamedNode(predicate), None, None)
            if q.graph_name in graphs
        ]

    def subjects(self, predicate: str, obj: str) -> list[str]:
        graphs = self._graphs
        return [
            q.subject.value
            for q in self._ox.quads_for_pattern(None, ox.NamedNode(predicate), ox.NamedNode(obj), None)
            if q.graph_name in graphs and isinstance(q.subject, ox.NamedNode)
        ]

    def named_subjects(self) -> list[ox.NamedNode]:
        """Every IRI that is the subject of a served triple, each once."""
        seen: set[ox.NamedNode] = set()
        graphs = self._graphs
        for graph in graphs:
            for q in self._ox.quads_for_pattern(None, None, None, graph):
                if isinstance(q.subject, ox.NamedNode):
                    seen.add(q.subject)
        return sorted(seen, key=lambda n: n.value)

    def descriptions(self) -> Iterator[tuple[ox.NamedNode, list[ox.Triple]]]:
        """Every named subject with its concise bounded description, as ``describe`` gives
        it, read leanly for whole-view builds: one index lookup per subject, duplicates
        removed only when there is more than one source graph, blank nodes followed only
        when there are any."""
        graphs = self._graphs
        for subject in self.named_subjects():
            direct = [
                q.triple
                for q in self._ox.quads_for_pattern(subject, None, None, None)
                if q.graph_name in graphs
            ]
            if len(graphs) > 1:
                direct = list(dict.fromkeys(direct))  # a triple two sources hold, once
            yield subject, self._closed(graphs, direct)

    def _closed(self, graphs: frozenset[ox.NamedNode], direct: list[ox.Triple]) -> list[ox.Triple]:
        """``direct`` and the triples of the blank nodes it reaches."""
        todo = [t.object for t in direct if isinstance(t.object, ox.BlankNode)]
        if not todo:
            return direct
        out, seen, visited = list(direct), set(direct), set()
        while todo:
            node = todo.pop()
            if node in visited:
                continue
            visited.add(node)
            for quad in self._ox.quads_for_pattern(node, None, None, None):
                triple = quad.triple
                if quad.graph_name in graphs and triple not in seen:
                    seen.add(triple)
                    out.append(triple)
                    if isinstance(triple.object, ox.BlankNode):
                        todo.append(triple.object)
        return out

    def members(self, class_iri: str, namespace: str) -> list[str]:
        """Sorted IRIs of the resources in ``namespace`` typed ``class_iri``."""
        seen: set[str] = set()
        graphs = self._graphs
        for quad in self._ox.quads_for_pattern(None, RDF_TYPE, ox.NamedNode(class_iri), None):
            s = quad.subject
            if quad.graph_name in graphs and isinstance(s, ox.NamedNode) and s.value.startswith(namespace):
                seen.add(s.value)
        return sorted(seen)

    def quads(self) -> Sequence[ox.Quad]:
        """Every served triple with its source graph (exports, tests)."""
        graphs = self._graphs
        return [q for q in self._ox.quads_for_pattern(None, None, None, None) if q.graph_name in graphs]
