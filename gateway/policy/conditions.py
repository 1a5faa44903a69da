"""Whether a rule's resource selector matches a resource: classes, IRI patterns and
conditions on values (the resource's own, or of resources one to three links away).

Conditions are three-valued, as SPARQL's are (SPARQL 1.1 §17.2): a value that is absent,
or that cannot be compared with the policy's (``gateway.policy.compare``), makes a
condition *unknown*, which fails a permit and satisfies a deny, so missing or malformed
data never widens a view. A resource with several values meets a condition when one of
them does (SPARQL's ``||``: true wins, then unknown, then false); ``not_equals`` holds
when none equals, and is unknown when none does but one is unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import pyoxigraph as ox

from gateway.policy.compare import comparator_for
from gateway.policy.model import Condition, Rule

__all__ = ["ACCEPTED", "MAX_NODES", "Lookup", "MemoLookup", "holds", "matches", "one_of"]

#: resources a condition reads at each step of its ``via`` links (and at the end)
MAX_NODES = 100

#: the outcomes of ``compare`` each operator accepts (``not_equals``: negated after)
ACCEPTED: dict[str, frozenset[int]] = {
    "equals": frozenset({0}),
    "in": frozenset({0}),
    "not_equals": frozenset({0}),
    "before": frozenset({-1}),
    "after": frozenset({1}),
    "at_most": frozenset({-1, 0}),
    "at_least": frozenset({0, 1}),
}


class Lookup(Protocol):
    """What conditions may read from the data (the store, unfiltered: the engine filters)."""

    def objects(self, subject: str, predicate: str) -> list[Any]: ...

    def subjects(self, predicate: str, obj: str) -> list[str]: ...


class MemoLookup:
    """A lookup that remembers its answers: for one view build or relabelling, where the storeys
    of a building, or the spaces of a storey, ask their conditions the same questions."""

    def __init__(self, lookup: Lookup, limit: int = 100_000) -> None:
        self.lookup, self.limit = lookup, limit
        self._objects: dict[tuple[str, str], list[Any]] = {}
        self._subjects: dict[tuple[str, str], list[str]] = {}

    def objects(self, subject: str, predicate: str) -> list[Any]:
        found = self._objects.get((subject, predicate))
        if found is None:
            if len(self._objects) >= self.limit:
                self._objects.clear()
            found = self._objects[subject, predicate] = self.lookup.objects(subject, predicate)
        return found

    def subjects(self, predicate: str, obj: str) -> list[str]:
        found = self._subjects.get((predicate, obj))
        if found is None:
            if len(self._subjects) >= self.limit:
                self._subjects.clear()
            found = self._subjects[predicate, obj] = self.lookup.subjects(predicate, obj)
        return found


def matches(rule: Rule, subject: str, types: set[str], lookup: Lookup) -> bool | None:
    """True, False, or None when a condition cannot be decided (a value is missing or
    cannot be compared): every selector must match, a False condition decides at once."""
    if rule.classes and not rule.classes & types:
        return False
    if rule.iris and not any(p.match(subject) for p in rule.iris):
        return False
    result: bool | None = True
    for cond in rule.where:
        outcome = holds(cond, subject, lookup)
        if outcome is False:
            return False
        if outcome is None:
            result = None
    return result


def holds(cond: Condition, subject: str, lookup: Lookup) -> bool | None:
    """The condition on ``subject``: True, False, or None (unknown)."""
    nodes = _reached(cond.via, subject, lookup) if cond.via else [subject]
    values = [v for node in nodes[:MAX_NODES] for v in lookup.objects(node, cond.property)]
    if cond.op == "exists":
        return bool(values) == bool(cond.value)
    if not values:
        return None
    wanted = cond.value if cond.op == "in" else (cond.value,)
    found = one_of(values, wanted, ACCEPTED[cond.op])
    if cond.op == "not_equals":
        return None if found is None else not found
    return found


def one_of(values: Iterable[Any], wanted: Sequence[Any], accepted: frozenset[int]) -> bool | None:
    """Whether any value compares with any wanted one in an ``accepted`` way: True as soon
    as one does; else None if some pair was incomparable; else False."""
    found: bool | None = False
    for value in values:
        comparator = comparator_for(value)
        if comparator is None:  # a blank node: compares with nothing
            found = None
            continue
        lexical = value.value
        for want in wanted:
            outcome = comparator(lexical, want)
            if outcome is None:
                found = None
            elif outcome in accepted:
                return True
    return found


def _reached(via: tuple[tuple[str, bool], ...], subject: str, lookup: Lookup) -> list[str]:
    """The resources ``via``'s links lead to from ``subject`` (``^``: backwards)."""
    nodes = [subject]
    for predicate, backwards in via:
        step: list[str] = []
        for node in nodes[:MAX_NODES]:
            if backwards:
                step.extend(lookup.subjects(predicate, node))
            else:
                step.extend(o.value for o in lookup.objects(node, predicate) if isinstance(o, ox.NamedNode))
        nodes = step
    return nodes
