"""What a new version of a source changed, and what of that change a subscriber may see.

``source_diff`` compares the old and new triples of one source (its named graph) resource
by resource: a resource changed when its concise bounded description differs, blank
nodes compared by their content (a parser names them afresh on every read).

``visible_change`` is the one place a change meets the policy, and it is pure: it decides
the subscriber's view of the resource before and after (``gateway.policy.decide``, with
the subscriber's grant), matches the topic against those *views* (so a condition on a
withheld value never matches), and diffs the visible fields. A change that shows in no
visible watched field is no change at all for that subscriber: nothing is sent, and
nothing a subscriber receives depends on data outside its view (non-interference,
DESIGN.md). Events are relative to that view: ``created`` when the resource entered it,
``deleted`` when it left it, ``updated`` when visible watched fields changed.

A resource's view may also change when its own description did not: a policy condition
``via`` a link reads a linked resource's values. ``linked`` finds those resources (the
ones from which a subscriber's conditions reach a changed resource, in the old or the
new data), so they are decided too; without it, whether a subscriber hears of such a
change would depend on whether a withheld field of the resource changed at the same
time, which is exactly the leak non-interference forbids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyoxigraph as ox

from gateway.notify.subscription import Topic
from gateway.policy.conditions import matches
from gateway.policy.decide import RDF_TYPE, Decision, Lookup, decide
from gateway.policy.model import Grant

__all__ = [
    "After",
    "Changed",
    "Visible",
    "describe_in",
    "linked",
    "source_diff",
    "view_of",
    "visible_change",
]

_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Changed:
    """A resource whose description a new source version changed: before and after."""

    subject: str
    before: tuple[ox.Triple, ...]
    after: tuple[ox.Triple, ...]


@dataclass(frozen=True, slots=True)
class Visible:
    """What one subscriber may see of one change."""

    kind: str  # created | updated | deleted
    fields: tuple[str, ...]  # the visible watched fields that changed, sorted
    #: the subscriber's view of those fields after the change (none when deleted)
    triples: tuple[ox.Triple, ...]
    rules: tuple[str, ...]
    purposes: tuple[str, ...]
    withheld: int  # fields really withheld, for the owner's audit log


def _by_subject(triples: Iterable[ox.Triple]) -> dict[Any, list[ox.Triple]]:
    out: dict[Any, list[ox.Triple]] = {}
    for t in triples:
        out.setdefault(t.subject, []).append(t)
    return out


def describe_in(index: Mapping[Any, list[ox.Triple]], subject: Any) -> list[ox.Triple]:
    """``subject``'s concise bounded description within ``index`` (by subject)."""
    out: list[ox.Triple] = []
    todo, seen = [subject], set()
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        for t in index.get(node, ()):
            out.append(t)
            if isinstance(t.object, ox.BlankNode):
                todo.append(t.object)
    return out


def _canon(term: Any, index: Mapping[Any, list[ox.Triple]], depth: int = 0) -> Any:
    """A term as a comparable value: a blank node by what it holds, not by its label."""
    if not isinstance(term, ox.BlankNode):
        return str(term)
    if depth > _MAX_DEPTH:
        return ("_",)
    return (
        "_",
        frozenset((t.predicate.value, _canon(t.object, index, depth + 1)) for t in index.get(term, ())),
    )


def _fields(subject: Any, triples: Sequence[ox.Triple]) -> dict[str, frozenset[Any]]:
    """Each field of ``subject`` in ``triples`` with its values, compared by content."""
    index = _by_subject(triples)
    out: dict[str, set[Any]] = {}
    for t in index.get(subject, ()):
        out.setdefault(t.predicate.value, set()).add(_canon(t.object, index))
    return {p: frozenset(v) for p, v in out.items()}


def source_diff(old: Sequence[ox.Triple], new: Sequence[ox.Triple], others: Any = None) -> list[Changed]:
    """The named resources whose description differs between two versions of a source,
    sorted by IRI. ``others(iri)`` gives a resource's triples from the node's other
    sources (they are part of its description before and after alike)."""
    before, after = _by_subject(old), _by_subject(new)
    subjects = {s for s in (*before, *after) if isinstance(s, ox.NamedNode)}
    out = []
    for subject in sorted(subjects, key=lambda s: s.value):
        was, now = describe_in(before, subject), describe_in(after, subject)
        if set(was) == set(now) or _fields(subject, was) == _fields(subject, now):
            continue  # the same triples (the quick test), or the same up to blank node labels
        extra = tuple(others(subject.value)) if others is not None else ()
        out.append(Changed(subject.value, (*extra, *was), (*extra, *now)))
    return out


Path = tuple[tuple[str, bool], ...]


def linked(subjects: Iterable[str], paths: Iterable[Path], lookups: Sequence[Lookup]) -> set[str]:
    """The resources from which one of ``paths`` (a condition's ``via`` hops: predicate,
    backwards?) reaches one of ``subjects`` after some of its hops, in any of ``lookups``
    (the old and the new data): every resource whose view a change of ``subjects`` may
    change through a link. A superset: each is decided, most come out unchanged."""
    found: set[str] = set()
    starts = set(subjects)
    for path in set(paths):
        for hops in (path[:j] for j in range(1, len(path) + 1)):
            nodes = starts
            for predicate, backwards in reversed(hops):
                nodes = {x for n in nodes for look in lookups for x in _back(look, n, predicate, backwards)}
            found |= nodes
    return found - starts


def _back(lookup: Lookup, node: str, predicate: str, backwards: bool) -> list[str]:
    """The resources one hop reaches ``node`` from: ``x p node``, or for a backwards hop
    ``node p x``."""
    if not backwards:
        return lookup.subjects(predicate, node)
    return [o.value for o in lookup.objects(node, predicate) if isinstance(o, ox.NamedNode)]


class After:
    """Conditions read the data as the new version makes it: the store (still serving the
    old version) less what the new version removes, plus what it adds."""

    def __init__(self, lookup: Lookup, old: Sequence[ox.Triple], new: Sequence[ox.Triple]) -> None:
        self.lookup = lookup
        self.removed = set(old) - set(new)
        self.added: dict[tuple[str, str], list[Any]] = {}
        self.added_subjects: dict[tuple[str, str], list[str]] = {}
        for t in set(new) - set(old):
            if not isinstance(t.subject, ox.NamedNode):
                continue  # conditions ask of named resources only
            self.added.setdefault((t.subject.value, t.predicate.value), []).append(t.object)
            if isinstance(t.object, ox.NamedNode):
                self.added_subjects.setdefault((t.predicate.value, t.object.value), []).append(
                    t.subject.value
                )

    def objects(self, subject: str, predicate: str) -> list[Any]:
        s, p = ox.NamedNode(subject), ox.NamedNode(predicate)
        kept = [o for o in self.lookup.objects(subject, predicate) if ox.Triple(s, p, o) not in self.removed]
        return kept + self.added.get((subject, predicate), [])

    def subjects(self, predicate: str, obj: str) -> list[str]:
        p, o = ox.NamedNode(predicate), ox.NamedNode(obj)
        kept = [
            s
            for s in self.lookup.subjects(predicate, obj)
            if ox.Triple(ox.NamedNode(s), p, o) not in self.removed
        ]
        return kept + self.added_subjects.get((predicate, obj), [])


class _ViewLookup:
    """A topic is decided on the subscriber's view of the resource itself, nothing else."""

    def __init__(self, subject: str, triples: Sequence[ox.Triple]) -> None:
        self.subject, self.triples = subject, triples

    def objects(self, subject: str, predicate: str) -> list[Any]:
        if subject != self.subject:
            return []
        node = ox.NamedNode(subject)
        return [t.object for t in self.triples if t.subject == node and t.predicate.value == predicate]

    def subjects(self, predicate: str, obj: str) -> list[str]:
        return []


def view_of(
    grant: Grant, topic: Topic, subject: str, cbd: Sequence[ox.Triple], lookup: Lookup
) -> Decision | None:
    """The subscriber's view of ``subject`` if it is in the topic (decided on that view)."""
    if not cbd:
        return None
    node = ox.NamedNode(subject)
    decision = decide(grant, node, cbd, lookup)
    if not decision.triples:
        return None
    types = {
        t.object.value
        for t in decision.triples
        if t.subject == node and t.predicate.value == RDF_TYPE and isinstance(t.object, ox.NamedNode)
    }
    if matches(topic.selector, subject, types, _ViewLookup(subject, decision.triples)) is not True:
        return None
    return decision


def visible_change(
    grant: Grant, topic: Topic, change: Changed, before: Lookup, after: Lookup
) -> Visible | None:
    """What the subscriber holding ``grant`` may see of ``change``; None: nothing."""
    old = view_of(grant, topic, change.subject, change.before, before)
    new = view_of(grant, topic, change.subject, change.after, after)
    if old is None and new is None:
        return None
    node = ox.NamedNode(change.subject)
    was = _fields(node, old.triples) if old else {}
    now = _fields(node, new.triples) if new else {}
    kind = "created" if old is None else "deleted" if new is None else "updated"
    changed = {p for p in was.keys() | now.keys() if was.get(p) != now.get(p)}
    if topic.watched is not None:
        changed &= topic.watched
    if not changed:
        return None
    shown = new or old
    assert shown is not None
    triples = () if new is None else tuple(_of_fields(node, new.triples, changed))
    return Visible(kind, tuple(sorted(changed)), triples, shown.rules, shown.purposes, shown.withheld)


def _of_fields(node: ox.NamedNode, triples: Sequence[ox.Triple], fields: set[str]) -> list[ox.Triple]:
    index = _by_subject(triples)
    out = []
    for t in index.get(node, ()):
        if t.predicate.value in fields:
            out.append(t)
            if isinstance(t.object, ox.BlankNode):
                out.extend(describe_in(index, t.object))
    return out
