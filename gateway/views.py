"""Each caller's view as a set of label graphs of the one store: no copy per caller.

``Views`` keeps the store's label graphs (``gateway.labels``) in line with the policy
in force: labelled in full when there are none (a new store, or one whose labels a
crash or an unlabelled change left behind), per changed source as the store switches
it in, and for the subjects a new rule can select when the policy changes (the
previous policy stays in force until they are labelled, then both switch together).
A grant's view is the label graphs it sees; its counts are their counts added up.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

import orjson
import pyoxigraph as ox

from gateway.labels import Labeller, changed_subjects, chunks, fresh_chunks, rule_key, visible_graphs
from gateway.policy.model import Grant, Rule
from gateway.store.local import RESIDUE_PREFIX, LabelChunk, Labels, Reader, SourceChange, Store

__all__ = ["DIRECT", "RESIDUE_SHARE", "RESIDUE_STORE_SHARE", "View", "Views", "grant_keys"]


#: a query reads at least this many label graphs of a view directly (the largest: never
#: worth a copy), and the others too while the rest would not fit the residue...
DIRECT = 1
#: ...which holds the view's other label graphs while they hold at most this share of
#: the view...
RESIDUE_SHARE = 0.05
#: ...or of all the labelled triples, whichever is more (a view of a few medium label
#: graphs, small beside the store, is then read through two graphs, not through many)
RESIDUE_STORE_SHARE = 0.01

_Plan = tuple[tuple[ox.NamedNode, ...], tuple[ox.NamedNode, ...]]
#: plans by the identity of a view's labels and graphs (each ``_graphs`` answer is one
#: object per labels version and grant); an entry holds both, so no identity is reused
_PLANS: dict[tuple[int, int, tuple[int, float, float]], tuple[Labels, tuple[ox.NamedNode, ...], _Plan]] = {}
#: residue names by the identity of the graphs they hold (an entry holds them too)
_NAMES: dict[int, tuple[tuple[ox.NamedNode, ...], ox.NamedNode]] = {}


@dataclass(frozen=True, slots=True)
class View:
    """A grant's view: the label graphs it sees, at one version of the labels."""

    labels: Labels
    graphs: tuple[ox.NamedNode, ...]

    def plan(self) -> _Plan:
        """The graphs a query reads directly, and the (small) ones it reads through a
        residue: a query pays a lookup per graph of its dataset for every pattern (a
        3-hop join over three graphs costs about 1.3 times one over two), and a view
        usually lies in a few large label graphs and many small ones."""
        knobs = (DIRECT, RESIDUE_SHARE, RESIDUE_STORE_SHARE)
        key = (id(self.labels), id(self.graphs), knobs)  # hashing the graphs costs 10 µs a query
        hit = _PLANS.get(key)
        if hit is None or hit[0] is not self.labels or hit[1] is not self.graphs:
            if len(_PLANS) >= 1024:
                _PLANS.clear()
            hit = _PLANS[key] = (self.labels, self.graphs, _plan(self.labels, self.graphs, *knobs))
        return hit[2]

    def residue(self, small: tuple[ox.NamedNode, ...]) -> ox.NamedNode:
        """The name of the residue of ``small``: the store keeps a residue in step with its
        label graphs, so one name serves every version of the labels."""
        hit = _NAMES.get(id(small))  # a plan's ``small`` is one object: naming it costs 17 µs
        if hit is None or hit[0] is not small:
            if len(_NAMES) >= 1024:
                _NAMES.clear()
            text = "|".join(g.value for g in small)
            name = ox.NamedNode(RESIDUE_PREFIX + hashlib.blake2b(text.encode(), digest_size=10).hexdigest())
            hit = _NAMES[id(small)] = (small, name)
        return hit[1]

    def triples(self) -> int:
        return sum(self.labels.graphs[g].triples for g in self.graphs)

    def classes(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for g in self.graphs:
            counts.update(self.labels.graphs[g].classes)
        return dict(counts)


def grant_keys(grant: Grant) -> frozenset[str] | None:
    """The label keys of a grant's rules; ``None`` for a grant of everything."""
    return None if grant.everything else frozenset(rule_key(r) for r in grant.rules)


def _state(keys: frozenset[str]) -> str:
    return orjson.dumps(sorted(keys)).decode()


@lru_cache(maxsize=64)
def _keys(state: str) -> frozenset[str]:
    return frozenset(orjson.loads(state)) if state else frozenset()


class Views:
    def __init__(self, store: Store, labeller: Labeller) -> None:
        self.store = store
        self.labeller = labeller
        self._lock = threading.Lock()  # one relabelling at a time
        store.on_change = self._on_change

    def _on_change(self, change: SourceChange) -> Iterable[LabelChunk]:
        """Called by the store, under its write lock, before a changed source is served."""
        labeller = self.labeller
        return chunks(labeller, change.reader, self.store.label_reader, changed_subjects(labeller, change))

    def sync(self, labeller: Labeller | None = None, commit: Callable[[], None] | None = None) -> None:
        """Label what ``labeller`` (by default the one in force) needs, then run ``commit``
        (which puts a new labeller in force) before any source can change again."""
        labeller = labeller or self.labeller
        with self._lock:
            stored = self.store.labels().state
            target = _state(labeller.keys)
            if stored == target and commit is None:
                return
            have = _keys(stored)
            added = [rule for key, rule in labeller.rules if key not in have]

            def chunks_of(reader: Reader) -> Iterable[LabelChunk]:
                if not stored:  # from nothing: every description, read in one pass
                    return fresh_chunks(labeller, reader, self.store.descriptions())
                return chunks(labeller, reader, self.store.label_reader, _selected(reader, added))

            def switch() -> None:
                self.labeller = labeller
                if commit is not None:
                    commit()

            self.store.relabel(chunks_of, target, clear=not stored, commit=switch)

    def view(self, grant: Grant) -> View | None:
        """The label graphs ``grant`` sees; ``None`` when its rules are not all labelled
        (permits from delegation evidence): such a grant's view is materialised instead."""
        labels = self.store.labels()
        seen = self.view_at(labels, grant)
        if seen is None:
            self.sync()  # not labelled yet, or for an older policy: label what is missing
            seen = self.view_at(self.store.labels(), grant)
        return seen

    @staticmethod
    def view_at(labels: Labels, grant: Grant) -> View | None:
        """The label graphs ``grant`` sees among ``labels``; ``None`` when they do not
        cover all its rules."""
        keys = grant_keys(grant)
        if not labels.state or (keys is not None and not keys <= _keys(labels.state)):
            return None
        return View(labels, _graphs(labels, keys))


def _plan(
    labels: Labels, graphs: tuple[ox.NamedNode, ...], direct: int, share: float, store_share: float
) -> _Plan:
    """The fewest largest graphs (at least ``direct``) that leave to the residue no more
    than its share; all of them when that would leave it one graph (a copy of one graph
    saves no lookup)."""
    sizes = {g: labels.graphs[g].triples for g in graphs}
    ordered = sorted(graphs, key=lambda g: (-sizes[g], g.value))
    store = sum(lg.triples for lg in labels.graphs.values())
    budget = max(share * sum(sizes.values()), store_share * store)
    cut, rest = direct, sum(sizes[g] for g in ordered[direct:])
    while cut < len(ordered) and rest > budget:
        rest -= sizes[ordered[cut]]
        cut += 1
    if len(ordered) - cut <= 1:
        return tuple(ordered), ()
    return tuple(ordered[:cut]), tuple(ordered[cut:])


@lru_cache(maxsize=1024)
def _graphs(labels: Labels, keys: frozenset[str] | None) -> tuple[ox.NamedNode, ...]:
    """Remembered per labels version (a ``Labels`` compares by identity) and grant."""
    return visible_graphs(labels, keys)


def _selected(reader: Reader, rules: list[Rule]) -> list[ox.NamedNode]:
    """The subjects ``rules`` can select: of their classes, or all for a rule without."""
    if not rules:
        return []
    if any(not rule.classes for rule in rules):
        return reader.named_subjects()
    classes = {cls for rule in rules for cls in rule.classes}
    return sorted(reader.typed(classes), key=lambda n: n.value)
