"""The pure policy engine: which of a resource's triples a caller may see, and why.

For one subject and its concise bounded description (each step a function below):

1. the rules that apply to the caller now (``grant_for``; ``grant_span`` says how long
   that stays so) are matched against the resource (``matching``: its classes, its IRI,
   and conditions on its values, ``gateway.policy.conditions``);
2. each field (predicate) is released when a matching *permit* covers it and no matching
   *deny* does (``field_table``); ``rdf:type`` values named in a permit's classes come
   with that permit (``release``);
3. blank nodes hang off the field that reaches them: visible with it, hidden with it
   (``with_blank_nodes``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyoxigraph as ox

from gateway.policy.conditions import Lookup, matches
from gateway.policy.model import Caller, Grant, PolicySet, Rule

__all__ = [
    "RDF_TYPE",
    "Decision",
    "Lookup",
    "Matching",
    "Released",
    "decide",
    "field_table",
    "grant_for",
    "grant_span",
    "granting",
    "matching",
    "release",
    "types_of",
    "with_blank_nodes",
]

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
#: field tables a grant keeps (one per combination of matching rules)
MAX_FIELD_TABLES = 4096
#: what a field comes to: the permits releasing it, () = not granted, None = denied
Granting = tuple[Rule, ...] | None
_UNDECIDED: Any = object()


@dataclass(frozen=True, slots=True)
class Decision:
    triples: list[ox.Triple]
    released: frozenset[str]
    withheld: int  # distinct fields withheld (never which)
    rules: tuple[str, ...]  # permits that released something
    purposes: tuple[str, ...]


@dataclass(slots=True, eq=False)
class Matching:
    """The rules of a grant that match one resource: permits whose selector is true,
    denies whose selector is not false (unknown counts: fail closed); and ``key``, the bit
    mask of both among the grant's rules."""

    permits: list[Rule]
    denies: list[Rule]
    key: int


def grant_for(policies: PolicySet | None, caller: Caller, now: dt.datetime, open_node: bool) -> Grant:
    if policies is None:
        # no policy configured: an open node (explicitly unauthenticated) shares all,
        # any other node shares nothing
        return Grant.of((), "none", everything=open_node)
    rules = tuple(r for r in policies.rules if r.applies_to(caller) and r.in_force(now))
    return Grant.of(rules, policies.version)


def grant_span(
    policies: PolicySet | None, caller: Caller, now: dt.datetime
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The span ``[since, until)`` around ``now`` in which ``grant_for`` gives ``caller``
    the same grant: from the last validity boundary (a rule's ``valid.from`` or
    ``valid.until``) at or before ``now`` to the next one after it; None where there is
    none. A grant remembered for this span never outlives a rule in it."""
    rules = policies.rules if policies is not None else ()
    edges = [
        edge
        for rule in rules
        if rule.applies_to(caller)
        for edge in (rule.valid_from, rule.valid_until)
        if edge is not None
    ]
    since = max((edge for edge in edges if edge <= now), default=None)
    until = min((edge for edge in edges if edge > now), default=None)
    return since, until


def decide(
    grant: Grant, subject: ox.NamedNode | ox.BlankNode, cbd: Sequence[ox.Triple], lookup: Lookup
) -> Decision:
    """The caller's view of one resource, given its concise bounded description."""
    direct = [t for t in cbd if t.subject == subject]
    if grant.everything:
        return Decision(list(cbd), frozenset(t.predicate.value for t in direct), 0, (), ())
    if not direct or not grant.rules or not isinstance(subject, ox.NamedNode):
        return Decision([], frozenset(), len({t.predicate.value for t in direct}), (), ())
    found = matching(grant, subject.value, types_of(direct), lookup)
    out = release(direct, field_table(grant, found), found)
    return Decision(
        with_blank_nodes(out.visible, cbd),
        frozenset(out.released),
        out.withheld,
        tuple(sorted(out.used)),
        tuple(sorted({r.purpose for r in out.used.values() if r.purpose})),
    )


def types_of(direct: Sequence[ox.Triple]) -> set[str]:
    """The classes (``rdf:type`` IRIs) a resource's own triples give it."""
    return {
        t.object.value for t in direct if t.predicate.value == RDF_TYPE and isinstance(t.object, ox.NamedNode)
    }


def matching(grant: Grant, subject: str, types: set[str], lookup: Lookup) -> Matching:
    permits: list[Rule] = []
    denies: list[Rule] = []
    key, bit = 0, 1
    for rule in grant.rules:
        outcome = matches(rule, subject, types, lookup)
        if rule.effect == "permit":
            if outcome is True:
                permits.append(rule)
                key |= bit
        elif outcome is not False:
            denies.append(rule)
            key |= bit
        bit <<= 1
    return Matching(permits, denies, key)


def field_table(grant: Grant, found: Matching) -> dict[str, Granting]:
    """The grant's table of what each field comes to under ``found``'s rules, filled in
    as fields are met (``granting``); kept on the grant, bounded."""
    table = grant.fields.get(found.key)
    if table is None:
        if len(grant.fields) >= MAX_FIELD_TABLES:
            grant.fields.clear()
        table = grant.fields[found.key] = {}
    return table


def granting(field: str, permits: Sequence[Rule], denies: Sequence[Rule]) -> Granting:
    """None when a deny covers ``field``; else the permits that cover it (deny wins)."""
    if any(d.covers(field) for d in denies):
        return None
    return tuple(r for r in permits if r.covers(field))


@dataclass(slots=True, eq=False)
class Released:
    """What ``release`` finds: the visible triples, their fields, how many distinct fields
    it withheld, and the permits (by id) that released something."""

    visible: list[ox.Triple]
    released: set[str]
    withheld: int
    used: dict[str, Rule]


def release(direct: Sequence[ox.Triple], table: dict[str, Granting], found: Matching) -> Released:
    """The resource's own triples the caller may see. ``table`` holds each field's
    ``granting`` (filled in here when missing); an ``rdf:type`` no permit's fields cover
    is released by the permits naming its class."""
    visible: list[ox.Triple] = []
    fields: set[str] = set()
    released: set[str] = set()
    used: dict[str, Rule] = {}
    for t in direct:
        p = t.predicate.value
        fields.add(p)
        rules = table.get(p, _UNDECIDED)
        if rules is _UNDECIDED:
            rules = table[p] = granting(p, found.permits, found.denies)
        if not rules:
            if rules is None or p != RDF_TYPE:
                continue
            rules = _by_class(t, found.permits)
            if not rules:
                continue
        visible.append(t)
        released.add(p)
        for r in rules:
            used[r.id] = r
    return Released(visible, released, len(fields) - len(released), used)


def _by_class(t: ox.Triple, permits: Sequence[Rule]) -> tuple[Rule, ...]:
    """The permits naming the class an ``rdf:type`` triple states."""
    if not isinstance(t.object, ox.NamedNode):
        return ()
    return tuple(r for r in permits if t.object.value in r.classes)


def with_blank_nodes(visible: list[ox.Triple], cbd: Sequence[ox.Triple]) -> list[ox.Triple]:
    """``visible`` with the blank nodes its objects reach, transitively, from ``cbd``."""
    blank = [t.object for t in visible if isinstance(t.object, ox.BlankNode)]
    if not blank:
        return visible
    by_subject: dict[ox.BlankNode, list[ox.Triple]] = {}
    for t in cbd:
        if isinstance(t.subject, ox.BlankNode):
            by_subject.setdefault(t.subject, []).append(t)
    out, seen = list(visible), set()
    while blank:
        node = blank.pop()
        if node in seen:
            continue
        seen.add(node)
        for t in by_subject.get(node, ()):
            out.append(t)
            if isinstance(t.object, ox.BlankNode):
                blank.append(t.object)
    return out
