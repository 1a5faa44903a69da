"""The node's graph: pyoxigraph, in memory or on disk, one named graph per source.

A source is replaced atomically: its new triples go into a fresh, not yet visible
graph, then one transaction on the ``urn:dsgo:meta`` graph points the source at it,
then the old graph is dropped. Readers only ever see whole versions. On disk, the meta
graph also remembers each source's fingerprint, so a restarted node serves at once and
re-reads only the sources that changed. The store knows nothing of HTTP or policies.

Beside the source graphs the store keeps *label graphs* (``urn:dsgo:label:...``): every
distinct triple of a named subject's concise bounded description once, in the graph
of its label, so that a query over a union of label graphs sees each triple once. What
a label means (who may see its triples) is the access layer's business: the store keeps
its text, counts the triples and classes of each label graph, and asks ``on_change``
(set by the access layer) for the new labels whenever a source changes, before the new
version is switched in. A label graph changes by inserting the new quads before
removing the old ones, so a reader never misses a triple that stays.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyoxigraph as ox

from gateway.store.reader import RDF_TYPE, Reader, Term, select

__all__ = [
    "LABEL_PREFIX",
    "MAX_RESIDUES",
    "RDF_TYPE",
    "RESIDUE_PREFIX",
    "LabelChunk",
    "LabelGraph",
    "Labels",
    "Reader",
    "SourceChange",
    "SourceState",
    "Store",
]

LABEL_PREFIX = "urn:dsgo:label:"
RESIDUE_PREFIX = "urn:dsgo:residue:"
_META = ox.NamedNode("urn:dsgo:meta")
_SOURCE = "urn:dsgo:source:"
_M = "urn:dsgo:meta#"
_M_GRAPH, _M_FINGERPRINT = ox.NamedNode(_M + "graph"), ox.NamedNode(_M + "fingerprint")
_M_LOADED, _M_TRIPLES = ox.NamedNode(_M + "loadedAt"), ox.NamedNode(_M + "triples")
#: quads per bulk_extend call while the node serves (it holds the GIL throughout: between
#: slices the node's other threads and its event loop run), and when nothing is served yet
_SLICE, _BULK = 5_000, 100_000
#: triples of the sources besides the largest that ``descriptions`` reads into memory
_SIDE = 200_000
#: residues kept at once (each a copy of a small share of one grant's view)
MAX_RESIDUES = 64
_LABELS, _M_STATE = ox.NamedNode("urn:dsgo:labels"), ox.NamedNode(_M + "state")


@dataclass(frozen=True, slots=True)
class SourceState:
    """The version of a source that is being served."""

    name: str
    graph: ox.NamedNode
    fingerprint: str
    loaded_at: float  # Unix time
    triples: int


@dataclass(frozen=True, slots=True)
class LabelGraph:
    """One label graph: what its label says (opaque here) and what it holds."""

    means: str
    triples: int
    classes: Mapping[str, int]  # rdf:type triples per class IRI (each a distinct subject)


@dataclass(frozen=True, slots=True, eq=False)  # identity: caches key on a version
class Labels:
    """The label graphs at one version. ``state`` is the labeller's record of what they
    reflect ("" when they reflect nothing yet, or a change was not labelled)."""

    version: int
    graphs: Mapping[ox.NamedNode, LabelGraph]
    state: str


@dataclass(slots=True)
class LabelChunk:
    """Part of a relabelling: quads to add to label graphs and quads to take out, with
    the meaning of every label graph the inserts name."""

    inserts: list[ox.Quad] = field(default_factory=list)
    removes: list[ox.Quad] = field(default_factory=list)
    means: dict[ox.NamedNode, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceChange:
    """A source about to change: ``reader`` sees the data as it will be, ``before`` as it
    was; ``changed`` are the triples only one of the two versions holds."""

    name: str
    reader: Reader
    before: Reader
    changed: Callable[[], Iterator[ox.Triple]]


class Store:
    """One node's triples. Thread-safe: one writer at a time, readers never block."""

    def __init__(self, path: Path | None = None) -> None:
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._write = threading.Lock()
        #: increases with every change; caches of derived data key on it
        self.generation = 0
        #: asked for the label changes a source change brings, before it is switched in
        self.on_change: Callable[[SourceChange], Iterable[LabelChunk]] | None = None
        #: told (in the writer's thread, after the write lock is let go) whenever the label
        #: graphs or residues changed: readers in other processes then take a new snapshot
        self.on_labels: list[Callable[[], None]] = []
        self._open()

    def _open(self) -> None:
        """Open the store and read what it serves: its sources and labels (a residue is
        not kept: orphans go)."""
        self._ox = ox.Store(str(self.path)) if self.path is not None else ox.Store()
        self._states: dict[str, SourceState] = self._read_meta()
        self._graphs: frozenset[ox.NamedNode] = frozenset(s.graph for s in self._states.values())
        self._reader = Reader(self._ox, self._graphs)
        self._labels = self._read_labels()
        #: copies of unions of small label graphs, by the label graphs each holds; kept in
        #: step with them by every label change, so they outlive data and policy versions
        self._residues: dict[ox.NamedNode, frozenset[ox.NamedNode]] = {}
        self._drop_orphans()

    # -- writing -------------------------------------------------------------------

    def replace_source(
        self, name: str, triples: Iterable[ox.Triple], fingerprint: str, serving: bool = True
    ) -> SourceState:
        """Serve ``triples`` as the new version of source ``name``, atomically. ``serving``
        false (nothing is served yet: a node starting) loads it in larger slices, several
        times faster (a bulk load's fixed cost, about 0.2 s here, is paid per slice)."""
        with self._write:
            graph = ox.NamedNode(f"{_SOURCE}{name}:{uuid.uuid4().hex}")
            # streamed (never the whole source as quads at once) and in slices, because
            # bulk_extend holds the GIL throughout (seconds for 100,000 quads on disk):
            # between slices the node's other threads and its event loop serve the
            # version in force; invisible until the meta graph points at it. (``extend``
            # would let them run, but its writes stay in memory until a flush.)
            quads = (ox.Quad(t.subject, t.predicate, t.object, graph) for t in triples)
            while chunk := list(itertools.islice(quads, _SLICE if serving else _BULK)):
                self._ox.bulk_extend(chunk)
            [[n]] = select(self._ox, f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH {graph} {{ ?s ?p ?o }} }}")
            count = int(n.value)
            state = SourceState(name, graph, fingerprint, time.time(), count)
            self._label_change(name, graph)
            self._swap(name, state)
            self._labels_follow()
        if count >= _SLICE:
            give_back()
        self._tell()
        return state

    def remove_source(self, name: str) -> None:
        with self._write:
            if name in self._states:
                self._label_change(name, None)
            self._swap(name, None)
            self._labels_follow()
        self._tell()

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
        self._reader = Reader(self._ox, self._graphs)
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
            if graph != _META and graph not in self._graphs and not _is_label(graph):
                self._ox.remove_graph(graph)

    @contextlib.contextmanager
    def apart(self) -> Iterator[Path]:
        """Close the on-disk store for another process to write (a node's first load,
        ``gateway.startup``), then open it again and serve what that process left, as a
        restarted node would. Nothing else may hold the store meanwhile: RocksDB closes
        (and lets go of its lock) only when its last reference goes."""
        assert self.path is not None, "only an on-disk store can be shared with a process"
        with self._write:
            self._ox.flush()
            self._reader = Reader(ox.Store(), frozenset())  # readers hold the store open
            del self._ox
            version = self._labels.version
            try:
                yield self.path
            finally:
                self._open()
                self._labels = Labels(version + 1, self._labels.graphs, self._labels.state)
                self.generation += 1
        self._tell()

    def close(self) -> None:
        if not hasattr(self, "_ox"):  # opening it again after ``apart`` failed: closed
            return
        if self.path is not None:
            self._ox.flush()
        self._reader = Reader(ox.Store(), frozenset())  # readers hold the store open
        del self._ox

    # -- labels --------------------------------------------------------------------

    def labels(self) -> Labels:
        return self._labels

    def relabel(
        self,
        chunks: Callable[[Reader], Iterable[LabelChunk]],
        state: str,
        clear: bool = False,
        commit: Callable[[], None] | None = None,
    ) -> None:
        """Apply the chunks ``chunks`` yields (reading the served data), record ``state``
        as what the labels now reflect and run ``commit``, all before any source can
        change. ``clear`` starts from no labels at all. Until it is done the labels keep
        their previous state in memory (a partial relabelling only adds what the new state
        needs); on disk they say "unlabelled", so a crash half-way relabels in full."""
        with self._write:
            self._persist_labels(dict(self._labels.graphs), "", memory=False)
            if clear:
                for graph in [*self._labels.graphs, *self._residues]:
                    self._ox.remove_graph(graph)
                self._residues = {}
                self._labels = Labels(self._labels.version + 1, {}, "")
            pending = LabelChunk()  # from nothing: gathered into large bulk loads
            for chunk in chunks(self._reader):
                if not clear or chunk.removes:
                    self._apply(pending, bulk=True)
                    self._apply(chunk, bulk=clear)
                    pending = LabelChunk()
                    continue
                pending.inserts += chunk.inserts
                pending.means.update(chunk.means)
                if len(pending.inserts) >= _BULK // 2:
                    self._apply(pending, bulk=True)
                    pending = LabelChunk()
            self._apply(pending, bulk=True)
            self._persist_labels(dict(self._labels.graphs), state)
            if commit is not None:
                commit()
            self.generation += 1
        give_back()
        self._tell()

    def _tell(self) -> None:
        for hook in self.on_labels:
            hook()

    def label_reader(self) -> Reader:
        """Reads over the label graphs (each distinct triple once)."""
        return Reader(self._ox, frozenset(self._labels.graphs))

    def snapshot(self, folder: Path) -> tuple[Labels, frozenset[ox.NamedNode]]:
        """A consistent copy of the store in ``folder`` for readers in other processes: a
        checkpoint of an on-disk store (hard links, cheap), else the label and residue
        graphs as N-Quads in ``folder/labels.nq``. Returns the labels and residues it holds."""
        with self._write:
            if self.path is not None:
                self._ox.backup(str(folder))
            else:
                folder.mkdir(parents=True)
                graphs = [*self._labels.graphs, *self._residues]
                quads = (q for g in graphs for q in self._ox.quads_for_pattern(None, None, None, g))
                with (folder / "labels.nq").open("wb") as out:
                    ox.serialize(quads, out, ox.RdfFormat.N_QUADS)
            return self._labels, frozenset(self._residues)

    def writing(self) -> bool:
        """Whether a writer is at work now: a reader wanting one version across several
        reads (the labels, then a query) checks it before and after them."""
        return self._write.locked()

    def residues(self) -> frozenset[ox.NamedNode]:
        return frozenset(self._residues)

    def residue(self, name: ox.NamedNode, graphs: Sequence[ox.NamedNode]) -> None:
        """Copy label graphs ``graphs`` into one graph ``name``: a caller whose view spans
        many small label graphs then reads one instead (a query pays a lookup per graph of
        its dataset). From then on every label change keeps it equal to their union; the
        oldest residues go beyond ``MAX_RESIDUES``. On disk the copy is flushed at once:
        RocksDB would keep it in memory until its write buffer fills (20 residues of 1M
        triples' views: about 40 MB of the node's RSS)."""
        with self._write:
            if name in self._residues:
                return
            while len(self._residues) >= MAX_RESIDUES:
                oldest = next(iter(self._residues))
                self._ox.remove_graph(oldest)
                del self._residues[oldest]
            source = f"VALUES ?g {{ {' '.join(str(g) for g in graphs)} }} GRAPH ?g {{ ?s ?p ?o }}"
            self._ox.update(f"INSERT {{ GRAPH {name} {{ ?s ?p ?o }} }} WHERE {{ {source} }}")
            self._residues[name] = frozenset(graphs)
            if self.path is not None:
                self._ox.flush()
        give_back()
        self._tell()

    def _follow_residues(self, chunk: LabelChunk) -> None:
        """Bring the residues in line with ``chunk``, applied to the label graphs: a triple
        enters a residue holding its new label graph, and leaves one holding its old label
        graph unless it stays there under another (inserted before removed, as there)."""
        holding: dict[object, list[ox.NamedNode]] = {}
        for residue, graphs in self._residues.items():
            for graph in graphs:
                holding.setdefault(graph, []).append(residue)
        staying: set[tuple[ox.NamedNode, ox.Triple]] = set()
        inserts: list[ox.Quad] = []
        for quad in chunk.inserts:
            for residue in holding.get(quad.graph_name, ()):
                inserts.append(ox.Quad(quad.subject, quad.predicate, quad.object, residue))
                staying.add((residue, quad.triple))
        self._ox.extend(inserts)
        for quad in chunk.removes:
            for residue in holding.get(quad.graph_name, ()):
                if (residue, quad.triple) not in staying:
                    self._ox.remove(ox.Quad(quad.subject, quad.predicate, quad.object, residue))

    def _label_change(self, name: str, graph: ox.NamedNode | None) -> None:
        """Ask ``on_change`` for the labels source ``name`` needs once ``graph`` replaces
        its version; without a labeller the labels no longer reflect the data."""
        old = self._states.get(name)
        if self.on_change is None or not self._labels.state:
            if self._labels.state:
                self._persist_labels(dict(self._labels.graphs), "")
            return
        after = (self._graphs - {old.graph} if old else self._graphs) | ({graph} if graph else set())
        change = SourceChange(
            name,
            Reader(self._ox, frozenset(after)),
            Reader(self._ox, self._graphs | ({graph} if graph else set())),
            lambda: self._changed(old.graph if old else None, graph),
        )
        dirty = False
        for chunk in self.on_change(change):
            if not dirty and (chunk.inserts or chunk.removes):
                self._persist_labels(dict(self._labels.graphs), "", memory=False)
                dirty = True
            self._apply(chunk)

    def _labels_follow(self) -> None:
        """After a switch: the labels (if they reflect the data) now reflect these sources."""
        if self._labels.state:
            self._persist_labels(dict(self._labels.graphs), self._labels.state)

    def _changed(self, old: ox.NamedNode | None, new: ox.NamedNode | None) -> Iterator[ox.Triple]:
        """The triples only one of graphs ``old`` and ``new`` holds (each looked up in the
        other, so nothing is held in memory); blank-node triples always count as changed."""
        for graph, other in ((old, new), (new, old)):
            if graph is None:
                continue
            for q in self._ox.quads_for_pattern(None, None, None, graph):
                blank = isinstance(q.subject, ox.BlankNode) or isinstance(q.object, ox.BlankNode)
                if blank or other is None or ox.Quad(q.subject, q.predicate, q.object, other) not in self._ox:
                    yield q.triple

    def _apply(self, chunk: LabelChunk, bulk: bool = False) -> None:
        """Add ``chunk``'s inserts (in one transaction, or, when ``bulk``, as fast as the
        store writes: for labels no reader relies on yet), then take out its removes."""
        if not chunk.inserts and not chunk.removes:
            return
        graphs = dict(self._labels.graphs)
        tally: dict[ox.NamedNode, tuple[int, Counter[str]]] = {}
        (self._ox.bulk_extend if bulk else self._ox.extend)(chunk.inserts)
        for quad in chunk.inserts:
            _count(tally, quad, 1)
        if self._residues:
            self._follow_residues(chunk)
        for quad in chunk.removes:
            self._ox.remove(quad)
            _count(tally, quad, -1)
        for graph, (triples, classes) in tally.items():
            old = graphs.get(graph)
            means = chunk.means.get(graph) or (old.means if old else "")
            total = Counter(old.classes if old else {})
            total.update(classes)
            n = (old.triples if old else 0) + triples
            if n > 0:
                graphs[graph] = LabelGraph(means, n, {c: k for c, k in total.items() if k > 0})
            else:
                graphs.pop(graph, None)
        self._labels = Labels(self._labels.version + 1, graphs, self._labels.state)

    def _persist_labels(
        self, graphs: dict[ox.NamedNode, LabelGraph], state: str, memory: bool = True
    ) -> None:
        """Record the label graphs and ``state`` in the meta graph (one transaction), and
        in memory unless ``memory`` is false."""
        if memory:
            self._labels = Labels(self._labels.version + 1, graphs, state)
        record = {
            "state": state,
            "sources": {name: s.graph.value for name, s in self._states.items()},
            "graphs": {g.value: [lg.means, lg.triples, dict(lg.classes)] for g, lg in graphs.items()},
        }
        text = orjson.dumps(record).decode()
        self._ox.update(
            f"DELETE WHERE {{ GRAPH {_META} {{ {_LABELS} ?p ?o }} }}; "
            f"INSERT DATA {{ GRAPH {_META} {{ {_LABELS} {_M_STATE} {ox.Literal(text)} }} }}"
        )

    def _read_labels(self) -> Labels:
        """The labels recorded with the data; unlabelled if they reflect other sources."""
        found = list(self._ox.quads_for_pattern(_LABELS, _M_STATE, None, _META))
        if not found or not isinstance(found[0].object, ox.Literal):
            return Labels(0, {}, "")
        record = orjson.loads(found[0].object.value)
        graphs = {ox.NamedNode(g): LabelGraph(m, n, c) for g, (m, n, c) in record["graphs"].items()}
        served = {name: s.graph.value for name, s in self._states.items()}
        state = record["state"] if record["sources"] == served else ""
        return Labels(0, graphs, state)

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

    def reader(self) -> Reader:
        """Reads over the served sources as they are now."""
        return self._reader

    def describe(self, iri: str) -> list[ox.Triple]:
        """The concise bounded description of ``iri``: its triples and the blank nodes
        reached from them (subject-based CBD), without duplicates."""
        return self._reader.description(ox.NamedNode(iri))

    def objects(self, subject: str, predicate: str) -> list[Term]:
        return self._reader.objects(subject, predicate)

    def subjects(self, predicate: str, obj: str) -> list[str]:
        return self._reader.subjects(predicate, obj)

    def named_subjects(self) -> list[ox.NamedNode]:
        """Every IRI that is the subject of a served triple, each once."""
        return self._reader.named_subjects()

    def descriptions(self) -> Iterator[tuple[ox.NamedNode, list[ox.Triple]]]:
        """Every named subject with its concise bounded description, as ``describe`` gives
        it. On disk in the store's order (not by IRI): the largest source is read in one
        pass (its quads come grouped by subject: the graph-subject index), the others first
        into memory when they are small, so no subject costs an index lookup (several
        times the cost of its triples) unless it reaches blank nodes. In memory, or with
        several large sources, subject by subject."""
        reader = self._reader
        states = sorted(self._states.values(), key=lambda s: (-s.triples, s.name))
        if not states:
            return
        if self.path is None or sum(s.triples for s in states[1:]) > _SIDE:
            for subject in reader.named_subjects():
                yield subject, reader.description(subject)
            return
        side: dict[ox.NamedNode, list[ox.Triple]] = {}
        for state in states[1:]:
            for q in self._ox.quads_for_pattern(None, None, None, state.graph):
                if isinstance(q.subject, ox.NamedNode):
                    side.setdefault(q.subject, []).append(q.triple)
        current: ox.NamedNode | None = None
        direct: list[ox.Triple] = []
        for q in self._ox.quads_for_pattern(None, None, None, states[0].graph):
            node = q.subject
            if not isinstance(node, ox.NamedNode):  # reached from a named subject's
                continue
            if node != current:
                if current is not None:
                    yield current, self._described(reader, direct, side.pop(current, None))
                current, direct = node, []
            direct.append(q.triple)
        if current is not None:
            yield current, self._described(reader, direct, side.pop(current, None))
        for subject, more in side.items():
            yield subject, self._described(reader, [], more)

    @staticmethod
    def _described(reader: Reader, direct: list[ox.Triple], more: list[ox.Triple] | None) -> list[ox.Triple]:
        if more:
            direct = list(dict.fromkeys(direct + more))  # a triple two sources hold, once
        return reader.closed(direct)

    def members(self, class_iri: str, namespace: str) -> list[str]:
        """Sorted IRIs of the resources in ``namespace`` typed ``class_iri``."""
        seen: set[str] = set()
        for quad in self._reader.quads(None, RDF_TYPE, ox.NamedNode(class_iri)):
            s = quad.subject
            if isinstance(s, ox.NamedNode) and s.value.startswith(namespace):
                seen.add(s.value)
        return sorted(seen)

    def quads(self) -> Sequence[ox.Quad]:
        """Every served triple with its source graph (exports, tests)."""
        return list(self._reader.quads(None, None, None))

    def query(
        self, query: str, graphs: Sequence[ox.NamedNode], **options: Any
    ) -> ox.QuerySolutions | ox.QueryBoolean | ox.QueryTriples:
        """``query`` over the union of ``graphs`` as its default graph and no named graphs:
        ``FROM``, ``FROM NAMED`` and ``GRAPH`` in the query reach nothing else."""
        return self._ox.query(query, default_graph=list(graphs), named_graphs=[], **options)


def _is_label(graph: ox.NamedNode | ox.BlankNode) -> bool:
    return isinstance(graph, ox.NamedNode) and graph.value.startswith(LABEL_PREFIX)


def _count(tally: dict[ox.NamedNode, tuple[int, Counter[str]]], quad: ox.Quad, sign: int) -> None:
    graph = quad.graph_name
    assert isinstance(graph, ox.NamedNode)
    triples, classes = tally.get(graph) or (0, Counter())
    if quad.predicate == RDF_TYPE and isinstance(quad.object, ox.NamedNode):
        classes[quad.object.value] += sign
    tally[graph] = (triples + sign, classes)


def give_back() -> None:
    """Return to the system the heap a large load or relabelling has freed: glibc keeps
    it otherwise, and the node's RSS would stay at its peak for as long as it runs."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def remove_folder(folder: Path) -> None:
    """Remove a snapshot folder, whatever is left of it."""
    shutil.rmtree(folder, ignore_errors=True)
