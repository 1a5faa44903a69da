"""Views without copies: every triple labelled, once, with who may see it.

``decide`` releases a field of a resource when a matching permit covers it and no
matching deny does; which rules *match* a resource and *cover* a field depends on the
rules and the data only, never on the caller. So a triple's visibility to any grant is
fixed by two sets of rules, computed once per data and policy version: the permits
that would release it (P) and the denies that would withhold it (D). Its **label** is
the set of such (P, D) pairs (more than one for a blank node reached from several
fields); a grant sees the triple when, for one pair, it holds a permit of P and no deny
of D. Rules are named by a key made of what they select and release (not whom they
apply to, nor when), so a new party, a changed ``to`` or a validity boundary needs no
relabelling at all: only the grant changes, and with it the set of labels it sees.

The store keeps each distinct triple in the graph of its label (``gateway.store.local``);
a query's dataset is the union of the label graphs its grant sees, and counts add up
the label graphs' counts. A changed source relabels the subjects whose triples changed
and those whose conditions read them; a changed policy relabels the subjects its new
rules can select (all of them for a rule without classes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import orjson
import pyoxigraph as ox

from gateway.policy.conditions import Lookup, MemoLookup, matches
from gateway.policy.model import Condition, Rule
from gateway.store.local import LABEL_PREFIX, LabelChunk, Labels, Reader, SourceChange

__all__ = [
    "NOBODY",
    "Label",
    "Labeller",
    "changed_subjects",
    "chunks",
    "fresh_chunks",
    "graph_of",
    "rule_key",
    "visible_graphs",
]

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
#: (permits that would release it, denies that would withhold it) pairs
Label = frozenset[tuple[frozenset[str], frozenset[str]]]
NOBODY: Label = frozenset()
#: subjects relabelled per chunk: bounds the memory a relabelling holds at once
CHUNK = 500


def rule_key(rule: Rule) -> str:
    """A name for what ``rule`` selects and releases: equal for equal rules."""
    return _key_of(id(rule), rule)[0]


_KEYS: dict[int, tuple[str, Rule]] = {}


def _key_of(ident: int, rule: Rule) -> tuple[str, Rule]:
    """Keys by the rule's identity; the entry holds the rule, so the identity is not reused."""
    hit = _KEYS.get(ident)
    if hit is not None and hit[1] is rule:
        return hit
    where = [(c.via, c.property, c.op, repr(c.value)) for c in rule.where]
    fields = None if rule.fields is None else sorted(rule.fields)
    content = (
        rule.effect,
        sorted(rule.classes),
        [p.pattern for p in rule.iris],
        where,
        fields,
        sorted(rule.exclude),
    )
    key = hashlib.blake2b(repr(content).encode(), digest_size=8).hexdigest()
    if len(_KEYS) > 65_536:
        _KEYS.clear()
    _KEYS[ident] = (key, rule)
    return key, rule


@lru_cache(maxsize=65_536)
def encode(label: Label) -> str:
    return orjson.dumps(sorted([sorted(p), sorted(d)] for p, d in label)).decode()


@lru_cache(maxsize=65_536)
def decode(text: str) -> Label:
    return frozenset((frozenset(p), frozenset(d)) for p, d in orjson.loads(text))


@lru_cache(maxsize=65_536)
def graph_of(text: str) -> ox.NamedNode:
    """The label graph of the label ``text`` encodes."""
    return ox.NamedNode(LABEL_PREFIX + hashlib.blake2b(text.encode(), digest_size=10).hexdigest())


def visible(label: Label, keys: frozenset[str]) -> bool:
    return any(p & keys and not d & keys for p, d in label)


def visible_graphs(labels: Labels, keys: frozenset[str] | None) -> tuple[ox.NamedNode, ...]:
    """The label graphs a grant holding rules ``keys`` sees (``None``: everything)."""
    if keys is None:
        return tuple(labels.graphs)
    return tuple(g for g, lg in labels.graphs.items() if visible(decode(lg.means), keys))


@dataclass(frozen=True, slots=True)
class _Matched:
    permits: tuple[tuple[str, Rule], ...]
    denies: tuple[tuple[str, Rule], ...]


@dataclass(frozen=True, slots=True)
class _ByTypes:
    static: _Matched
    dynamic: tuple[tuple[str, Rule], ...]


class Labeller:
    """The labels of one rule set: the policy in force, without rules that have expired."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        by_key: dict[str, Rule] = {}
        for rule in rules:
            by_key.setdefault(rule_key(rule), rule)
        self.rules = tuple(by_key.items())
        self.keys = frozenset(by_key)
        self.conditions: tuple[Condition, ...] = tuple(c for _, r in self.rules for c in r.where)
        #: predicates a condition reads: a change of one can change other subjects' labels
        self.reads = frozenset(p for c in self.conditions for p in (c.property, *(hop for hop, _ in c.via)))
        self._pairs: dict[tuple[tuple[str, ...], tuple[str, ...]], dict[tuple[str, str], Label]] = {}
        self._by_types: dict[frozenset[str], _ByTypes] = {}

    def label(
        self, subject: ox.NamedNode, cbd: Sequence[ox.Triple], lookup: Lookup
    ) -> dict[ox.Triple, Label]:
        """The label of each triple of ``subject``'s description ``cbd``."""
        direct = [t for t in cbd if t.subject == subject]
        types = {
            t.object.value
            for t in direct
            if t.predicate.value == RDF_TYPE and isinstance(t.object, ox.NamedNode)
        }
        matched = self._matched(subject.value, types, lookup)
        pairs = self._pairs_for(matched)
        out: dict[ox.Triple, Label] = {}
        for t in direct:
            out[t] = self._direct(pairs, matched, t)
        if len(direct) < len(cbd):
            _label_blank_nodes(out, direct, cbd)
        return out

    def _matched(self, subject: str, types: set[str], lookup: Lookup) -> _Matched:
        plan = self._plan(frozenset(types))
        if not plan.dynamic:
            return plan.static
        permits, denies = list(plan.static.permits), list(plan.static.denies)
        for key, rule in plan.dynamic:
            outcome = matches(rule, subject, types, lookup)
            if rule.effect == "permit":
                if outcome is True:
                    permits.append((key, rule))
            elif outcome is not False:  # unknown satisfies a deny
                denies.append((key, rule))
        return _Matched(tuple(permits), tuple(denies))

    def _plan(self, types: frozenset[str]) -> _ByTypes:
        """For resources typed ``types``: the rules that match them whatever else they hold
        (no IRI patterns, no conditions), and those ``matches`` must decide per resource.
        A rule whose classes miss ``types`` matches none of them."""
        found = self._by_types.get(types)
        if found is None:
            permits: list[tuple[str, Rule]] = []
            denies: list[tuple[str, Rule]] = []
            dynamic: list[tuple[str, Rule]] = []
            for key, rule in self.rules:
                if rule.classes and not rule.classes & types:
                    continue
                if rule.iris or rule.where:
                    dynamic.append((key, rule))
                else:
                    (permits if rule.effect == "permit" else denies).append((key, rule))
            if len(self._by_types) >= 4096:
                self._by_types.clear()
            found = self._by_types[types] = _ByTypes(_Matched(tuple(permits), tuple(denies)), tuple(dynamic))
        return found

    def _pairs_for(self, matched: _Matched) -> dict[tuple[str, str], Label]:
        """The memo of (field, class) -> label of a subject's own triple, for one
        combination of matching rules: the same for every resource those rules match."""
        key = (tuple(k for k, _ in matched.permits), tuple(k for k, _ in matched.denies))
        found = self._pairs.get(key)
        if found is None:
            if len(self._pairs) >= 4096:
                self._pairs.clear()
            found = self._pairs[key] = {}
        return found

    @staticmethod
    def _direct(pairs: dict[tuple[str, str], Label], matched: _Matched, t: ox.Triple) -> Label:
        """The label of the subject's own triple ``t``: one object per (field, class), so
        the labels' look-ups downstream hash and compare it once."""
        p = t.predicate.value
        cls = t.object.value if p == RDF_TYPE and isinstance(t.object, ox.NamedNode) else ""
        label = pairs.get((p, cls))
        if label is None:
            released = {k for k, r in matched.permits if r.covers(p) or (cls and cls in r.classes)}
            denied = frozenset(k for k, r in matched.denies if r.covers(p))
            label = pairs[p, cls] = frozenset(((frozenset(released), denied),)) if released else NOBODY
        return label


def _label_blank_nodes(
    out: dict[ox.Triple, Label], direct: list[ox.Triple], cbd: Sequence[ox.Triple]
) -> None:
    """A blank node's triples are seen with any field that reaches them."""
    by_subject: dict[ox.BlankNode, list[ox.Triple]] = {}
    for t in cbd:
        if isinstance(t.subject, ox.BlankNode):
            by_subject.setdefault(t.subject, []).append(t)
    for field in direct:
        if not isinstance(field.object, ox.BlankNode):
            continue
        label, todo, seen = out[field], [field.object], set()
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            for t in by_subject.get(node, ()):
                out[t] = out.get(t, NOBODY) | label
                if isinstance(t.object, ox.BlankNode):
                    todo.append(t.object)


def chunks(
    labeller: Labeller, reader: Reader, labelled: Callable[[], Reader], subjects: Iterable[ox.NamedNode]
) -> Iterator[LabelChunk]:
    """The label changes that bring ``subjects`` (read through ``reader``) in line with
    ``labeller``, against what the label graphs hold (``labelled()`` reads them as they
    are when each chunk is made), ``CHUNK`` subjects at a time."""
    lookup = MemoLookup(reader)
    batch: list[ox.NamedNode] = []
    for subject in subjects:
        batch.append(subject)
        if len(batch) >= CHUNK:
            yield _chunk(labeller, reader, labelled(), batch, lookup)
            batch = []
    if batch:
        yield _chunk(labeller, reader, labelled(), batch, lookup)


def fresh_chunks(
    labeller: Labeller, reader: Reader, descriptions: Iterable[tuple[ox.NamedNode, list[ox.Triple]]]
) -> Iterator[LabelChunk]:
    """The labels of every subject of ``descriptions`` (each named subject of ``reader``
    with its description, once) when the label graphs hold nothing yet: nothing is looked
    up in them, and a subject labelled ahead of its turn (it shares a blank node with an
    earlier one, so both are labelled together) is skipped when its turn comes."""
    lookup = MemoLookup(reader)
    ahead: set[ox.NamedNode] = set()
    batch: dict[ox.NamedNode, list[ox.Triple]] = {}
    for subject, cbd in descriptions:
        if subject in ahead:
            ahead.discard(subject)
            continue
        batch[subject] = cbd
        if len(batch) >= CHUNK:
            yield _fresh_chunk(labeller, reader, batch, lookup, ahead)
            batch = {}
    if batch:
        yield _fresh_chunk(labeller, reader, batch, lookup, ahead)


def _fresh_chunk(
    labeller: Labeller,
    reader: Reader,
    described: dict[ox.NamedNode, list[ox.Triple]],
    lookup: Lookup,
    ahead: set[ox.NamedNode],
) -> LabelChunk:
    first = set(described)
    _add_roots(reader, None, described)
    ahead |= described.keys() - first
    chunk = LabelChunk()
    named: dict[Label, ox.NamedNode] = {}  # most triples share a few label objects
    for t, label in _labelled(labeller, described, lookup).items():
        graph = named.get(label)
        if graph is None:
            text = encode(label)
            graph = named[label] = graph_of(text)
            chunk.means[graph] = text
        chunk.inserts.append(ox.Quad(t.subject, t.predicate, t.object, graph))
    return chunk


def _labelled(
    labeller: Labeller, described: dict[ox.NamedNode, list[ox.Triple]], lookup: Lookup
) -> dict[ox.Triple, Label]:
    """The label of every triple of the descriptions (a blank node's: the union over the
    subjects reaching it)."""
    new: dict[ox.Triple, Label] = {}
    for root, cbd in described.items():
        for t, label in labeller.label(root, cbd, lookup).items():
            new[t] = new.get(t, NOBODY) | label
    return new


def _chunk(
    labeller: Labeller, reader: Reader, labelled: Reader, subjects: list[ox.NamedNode], lookup: Lookup
) -> LabelChunk:
    described = {s: reader.description(s) for s in subjects}
    held = _add_roots(reader, labelled, described)
    new = _labelled(labeller, described, lookup)
    old = {q.triple: q for quads in held.values() for q in quads}
    chunk = LabelChunk()
    for t, label in new.items():
        text = encode(label)
        graph = graph_of(text)
        before = old.pop(t, None) or _held(labelled, t)
        if before is not None and before.graph_name == graph:
            continue
        chunk.inserts.append(ox.Quad(t.subject, t.predicate, t.object, graph))
        chunk.means[graph] = text
        if before is not None:
            chunk.removes.append(before)
    chunk.removes.extend(old.values())
    return chunk


def _add_roots(
    reader: Reader, labelled: Reader | None, described: dict[ox.NamedNode, list[ox.Triple]]
) -> dict[ox.NamedNode, list[ox.Quad]]:
    """Add the other subjects that share a blank node with one described, until none is
    left, so a shared blank node's label is the union over all the fields that reach it:
    the blank nodes described subjects reach now, and those they reached as labelled
    (a blank node a changed subject no longer reaches keeps the labels of the others
    that still do). Returns each described subject's quads as the label graphs hold them
    (none without ``labelled``: nothing is labelled yet)."""
    held: dict[ox.NamedNode, list[ox.Quad]] = {}
    done: set[ox.BlankNode] = set()
    while True:
        if labelled is not None:
            for root in described.keys() - held.keys():
                held[root] = labelled.quads_of(root)
        blank = {t.object for cbd in described.values() for t in cbd if isinstance(t.object, ox.BlankNode)}
        blank |= {q.object for quads in held.values() for q in quads if isinstance(q.object, ox.BlankNode)}
        todo = blank - done
        if not todo:
            return held
        done |= todo
        more: set[ox.NamedNode] = set()
        for node in todo:
            more |= reader.roots(node)
        for root in sorted(more - described.keys(), key=lambda n: n.value):
            described[root] = reader.description(root)


def _held(labelled: Reader, t: ox.Triple) -> ox.Quad | None:
    """Where a blank node's triple is labelled, if the fields that reached it before were
    another subject's (a blank node that kept its name across versions of its source)."""
    if not isinstance(t.subject, ox.BlankNode):
        return None
    return next(labelled.quads(t.subject, t.predicate, t.object), None)


def changed_subjects(labeller: Labeller, change: SourceChange) -> list[ox.NamedNode]:
    """The subjects whose labels a source change can alter: those of the changed triples
    (a blank node's: the subjects reaching it), and those whose conditions read a changed
    triple through their ``via`` links, found by walking the links back."""
    touched: set[ox.NamedNode] = set()
    reads: list[ox.Triple] = []
    for t in change.changed():
        if isinstance(t.subject, ox.NamedNode):
            touched.add(t.subject)
        elif isinstance(t.subject, ox.BlankNode):
            touched |= change.before.roots(t.subject)
        if t.predicate.value in labeller.reads:
            reads.append(t)
    lookup = MemoLookup(change.before)
    for cond in labeller.conditions:
        if cond.via:
            touched |= _readers_of(cond, reads, lookup)
    return sorted(touched, key=lambda n: n.value)


def _readers_of(cond: Condition, changed: list[ox.Triple], lookup: Lookup) -> set[ox.NamedNode]:
    """The subjects whose ``cond`` could read one of ``changed`` at some hop."""
    depth = len(cond.via)
    starts: dict[int, set[str]] = {}
    for t in changed:
        p = t.predicate.value
        if p == cond.property and isinstance(t.subject, ox.NamedNode):
            starts.setdefault(depth, set()).add(t.subject.value)
        for i, (hop, backwards) in enumerate(cond.via):
            node = t.object if backwards else t.subject
            if p == hop and isinstance(node, ox.NamedNode):
                starts.setdefault(i, set()).add(node.value)
    found: set[ox.NamedNode] = set()
    for at, nodes in starts.items():
        for hop, backwards in reversed(cond.via[:at]):
            nodes = _step_back(nodes, hop, backwards, lookup)
        found.update(ox.NamedNode(n) for n in nodes)
    return found


def _step_back(nodes: set[str], hop: str, backwards: bool, lookup: Lookup) -> set[str]:
    """The nodes from which hop ``hop`` reaches one of ``nodes``."""
    if backwards:  # n_next is a subject of (n_next hop n): n is an object of n_next
        return {o.value for n in nodes for o in lookup.objects(n, hop) if isinstance(o, ox.NamedNode)}
    return {s for n in nodes for s in lookup.subjects(hop, n)}
