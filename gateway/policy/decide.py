"""The pure policy engine: which of a resource's triples a caller may see, and why.

For one subject and its concise bounded description:

1. the rules that apply to the caller now (``grant_for``) are matched against the
   resource: its classes, its IRI, and conditions on its values (or on resources one to
   three links away);
2. each field (predicate) is released when a matching *permit* covers it and no matching
   *deny* does; ``rdf:type`` values named in a permit's classes come with that permit;
3. blank nodes hang off the field that reaches them: visible with it, hidden with it.

Conditions are three-valued, as SPARQL's are (SPARQL 1.1 §17.2): a value that is absent,
or that cannot be compared with the policy's (a text against a number), makes a condition
*unknown*, which fails a permit and satisfies a deny, so missing or malformed data never
widens a view. A resource with several values meets a condition when one of them does
(``not_equals``: when none equals), and is unknown when none does but one is unknown.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import pyoxigraph as ox

from gateway.policy.model import Caller, Condition, Grant, PolicySet, Rule

__all__ = ["Decision", "FieldReason", "Lookup", "decide", "explain", "grant_for", "grant_span", "matches"]

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
_XSD = "http://www.w3.org/2001/XMLSchema#"
_NUMERIC = {
    _XSD + t
    for t in (
        "integer",
        "decimal",
        "double",
        "float",
        "int",
        "long",
        "short",
        "byte",
        "nonNegativeInteger",
        "positiveInteger",
        "negativeInteger",
        "nonPositiveInteger",
        "unsignedInt",
        "unsignedLong",
        "unsignedShort",
        "unsignedByte",
    )
}


class Lookup(Protocol):
    """What conditions may read from the data (the store, unfiltered: the engine filters)."""

    def objects(self, subject: str, predicate: str) -> list[Any]: ...

    def subjects(self, predicate: str, obj: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Decision:
    triples: list[ox.Triple]
    released: frozenset[str]
    withheld: int  # distinct fields withheld (never which)
    rules: tuple[str, ...]  # permits that released something
    purposes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FieldReason:
    field: str
    released: bool
    rules: tuple[str, ...]
    reason: str


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
    if grant.everything:
        fields = frozenset(t.predicate.value for t in cbd if t.subject == subject)
        return Decision(list(cbd), fields, 0, (), ())
    direct = [t for t in cbd if t.subject == subject]
    if not direct or not grant.rules or not isinstance(subject, ox.NamedNode):
        return Decision([], frozenset(), len({t.predicate.value for t in direct}), (), ())
    types = {
        t.object.value for t in direct if t.predicate.value == RDF_TYPE and isinstance(t.object, ox.NamedNode)
    }
    permits: list[Rule] = []
    denies: list[Rule] = []
    for rule in grant.rules:
        if rule.effect == "permit":
            if matches(rule, subject.value, types, lookup) is True:
                permits.append(rule)
        elif matches(rule, subject.value, types, lookup) is not False:
            denies.append(rule)
    by_field = _fields_for(permits, denies)
    visible: list[ox.Triple] = []
    released: set[str] = set()
    used: dict[str, Rule] = {}
    for t in direct:
        p = t.predicate.value
        granting = by_field.get(p, _UNDECIDED)
        if granting is _UNDECIDED:
            denied = any(d.covers(p) for d in denies)
            granting = by_field[p] = None if denied else tuple(r for r in permits if r.covers(p))
        if granting is None:  # a matching deny covers it
            continue
        if not granting and p == RDF_TYPE and isinstance(t.object, ox.NamedNode):
            granting = tuple(r for r in permits if t.object.value in r.classes)
        if granting:
            visible.append(t)
            released.add(p)
            for r in granting:
                used.setdefault(r.id, r)
    withheld = len({t.predicate.value for t in direct} - released)
    return Decision(
        _with_blank_nodes(visible, cbd),
        frozenset(released),
        withheld,
        tuple(sorted(used)),
        tuple(sorted({r.purpose for r in used.values() if r.purpose})),
    )


_UNDECIDED: Any = object()
#: what each field comes to under a combination of matching permits and denies: the same
#: for every resource those rules match, so a view decides each field once per
#: combination. Keyed by the rules' identities; the entry holds the rules, so an
#: identity cannot be reused while its entry lives. None = denied, () = not granted.
_FIELDS: dict[tuple[int, ...], tuple[list[Rule], list[Rule], dict[str, tuple[Rule, ...] | None]]] = {}
_MAX_FIELDS = 4096


def _fields_for(permits: list[Rule], denies: list[Rule]) -> dict[str, tuple[Rule, ...] | None]:
    key = (*map(id, permits), 0, *map(id, denies))
    entry = _FIELDS.get(key)
    if entry is None:
        if len(_FIELDS) >= _MAX_FIELDS:
            _FIELDS.clear()
        entry = _FIELDS[key] = (permits, denies, {})
    return entry[2]


def _with_blank_nodes(visible: list[ox.Triple], cbd: Sequence[ox.Triple]) -> list[ox.Triple]:
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


def matches(rule: Rule, subject: str, types: set[str], lookup: Lookup) -> bool | None:
    """True, False, or None when a condition cannot be decided (a value is missing or
    cannot be compared)."""
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
    nodes = [subject]
    for predicate, backwards in cond.via:
        nxt: list[str] = []
        for n in nodes[:100]:
            if backwards:
                nxt.extend(lookup.subjects(predicate, n))
            else:
                nxt.extend(o.value for o in lookup.objects(n, predicate) if isinstance(o, ox.NamedNode))
        nodes = nxt
    values = [v for n in nodes[:100] for v in lookup.objects(n, cond.property)]
    if cond.op == "exists":
        return bool(values) == bool(cond.value)
    if not values:
        return None
    wanted = cond.value if cond.op == "in" else [cond.value]
    accepted = _ACCEPTED[cond.op]
    found: bool | None = False  # SPARQL's ||: true wins, then unknown (an error), then false
    for v in values:
        for w in wanted:
            c = _compare(v, w)
            if c is None:
                found = None
            elif c in accepted:
                found = True
                break
        if found is True:
            break
    if cond.op == "not_equals":
        return None if found is None else not found
    return found


#: the outcomes of ``_compare`` each operator accepts (``not_equals``: negated after)
_ACCEPTED: dict[str, tuple[int, ...]] = {
    "equals": (0,),
    "in": (0,),
    "not_equals": (0,),
    "before": (-1,),
    "after": (1,),
    "at_most": (-1, 0),
    "at_least": (0, 1),
}


def _compare(term: Any, value: Any) -> int | None:
    """-1, 0 or 1 comparing an RDF term with a policy value; None when incomparable."""
    if isinstance(term, ox.NamedNode):
        text = term.value
        return None if not isinstance(value, str) else (text > value) - (text < value)
    if not isinstance(term, ox.Literal):
        return None
    lexical, datatype = term.value, term.datatype.value
    if isinstance(value, bool):
        return (lexical == str(value).lower()) - 1 if datatype == _XSD + "boolean" else None
    if isinstance(value, int | float):
        try:
            if datatype in _NUMERIC:
                number = Decimal(lexical)
            elif datatype == _XSD + "gYear":
                number = Decimal(int(lexical[:5] if lexical.startswith("-") else lexical[:4]))
            elif datatype in (_XSD + "date", _XSD + "dateTime"):
                number = Decimal(int(lexical[:4]))  # a year compared with a date
            else:
                return None
        except (InvalidOperation, ValueError):
            return None
        target = Decimal(str(value))
        return (number > target) - (number < target)
    text = str(value)
    if datatype in _NUMERIC:
        try:
            a, b = Decimal(lexical), Decimal(text)
        except InvalidOperation:
            return None
        return (a > b) - (a < b)
    return (lexical > text) - (lexical < text)


def explain(
    policies: PolicySet | None,
    caller: Caller,
    subject: ox.NamedNode,
    cbd: Sequence[ox.Triple],
    lookup: Lookup,
    now: dt.datetime,
) -> list[FieldReason]:
    """For operators: each field of ``subject`` with the rule that released it, or why not."""
    fields = sorted({t.predicate.value for t in cbd if t.subject == subject})
    if policies is None:
        return [FieldReason(f, False, (), "no policies are configured: default deny") for f in fields]
    grant = grant_for(policies, caller, now, open_node=False)
    released = decide(grant, subject, cbd, lookup)
    types = {
        t.object.value
        for t in cbd
        if t.subject == subject and t.predicate.value == RDF_TYPE and isinstance(t.object, ox.NamedNode)
    }
    out = []
    for f in fields:
        if f in released.released:
            rules = tuple(
                r.id
                for r in grant.rules
                if r.effect == "permit" and r.covers(f) and matches(r, subject.value, types, lookup) is True
            )
            rules = rules or tuple(r.id for r in grant.rules if r.effect == "permit" and types & r.classes)
            out.append(FieldReason(f, True, rules, "released by " + ", ".join(rules)))
            continue
        out.append(
            FieldReason(f, False, (), _why_not(policies, caller, subject.value, types, f, lookup, now))
        )
    return out


def _why_not(
    policies: PolicySet,
    caller: Caller,
    subject: str,
    types: set[str],
    field: str,
    lookup: Lookup,
    now: dt.datetime,
) -> str:
    reasons = []
    for rule in policies.rules:
        if not rule.covers(field) and not (field == RDF_TYPE and rule.classes & types):
            continue
        if not rule.applies_to(caller):
            continue
        if rule.effect == "deny":
            if rule.in_force(now) and matches(rule, subject, types, lookup) is not False:
                return f"denied by rule {rule.id}"
            continue
        if not rule.in_force(now):
            reasons.append(f"rule {rule.id} would release it but is not in force now")
            continue
        outcome = matches(rule, subject, types, lookup)
        if outcome is False:
            reasons.append(f"rule {rule.id} would release it but the resource does not match its selector")
        elif outcome is None:
            reasons.append(
                f"rule {rule.id} would release it but a value its condition needs is missing "
                "or cannot be compared"
            )
    who = caller.party_id or "an anonymous caller"
    return "; ".join(reasons) if reasons else f"no rule releases it to {who} (default deny)"
