"""For operators (``dsgo policy explain``, ``/policy/explain``): each field of a resource
with the rule that released it to a caller, or why it was withheld.

The verdict is the engine's own (``decide``); this module only finds the words: the
permits that released a field, the deny rule that withheld it, or, for each permit that
would have released it, what stood in the way (not in force now, the selector does not
match, a value its condition needs is missing or cannot be compared).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pyoxigraph as ox

from gateway.policy.conditions import Lookup, matches
from gateway.policy.decide import RDF_TYPE, decide, grant_for, types_of
from gateway.policy.model import Caller, Grant, PolicySet, Rule

__all__ = ["FieldReason", "explain"]


@dataclass(frozen=True, slots=True)
class FieldReason:
    field: str
    released: bool
    rules: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class _Resource:
    subject: str
    types: set[str]
    lookup: Lookup


def explain(
    policies: PolicySet | None,
    caller: Caller,
    subject: ox.NamedNode,
    cbd: Sequence[ox.Triple],
    lookup: Lookup,
    now: dt.datetime,
) -> list[FieldReason]:
    """Each field of ``subject`` with the rule that released it, or why not."""
    direct = [t for t in cbd if t.subject == subject]
    fields = sorted({t.predicate.value for t in direct})
    if policies is None:
        return [FieldReason(f, False, (), "no policies are configured: default deny") for f in fields]
    grant = grant_for(policies, caller, now, open_node=False)
    released = decide(grant, subject, cbd, lookup).released
    resource = _Resource(subject.value, types_of(direct), lookup)
    return [
        _released(grant, f, resource) if f in released else _withheld(policies, caller, f, resource, now)
        for f in fields
    ]


def _released(grant: Grant, field: str, resource: _Resource) -> FieldReason:
    permits = [r for r in grant.rules if r.effect == "permit"]
    rules = tuple(r.id for r in permits if r.covers(field) and _matches(r, resource) is True)
    rules = rules or tuple(r.id for r in permits if resource.types & r.classes)
    return FieldReason(field, True, rules, "released by " + ", ".join(rules))


def _withheld(
    policies: PolicySet, caller: Caller, field: str, resource: _Resource, now: dt.datetime
) -> FieldReason:
    notes = []
    for rule in _concerning(policies.rules, caller, field, resource):
        if rule.effect == "deny":
            if rule.in_force(now) and _matches(rule, resource) is not False:
                return FieldReason(field, False, (), f"denied by rule {rule.id}")
            continue
        note = _hindrance(rule, resource, now)
        if note:
            notes.append(f"rule {rule.id} would release it but {note}")
    who = caller.party_id or "an anonymous caller"
    return FieldReason(field, False, (), "; ".join(notes) or f"no rule releases it to {who} (default deny)")


def _concerning(rules: Sequence[Rule], caller: Caller, field: str, resource: _Resource) -> list[Rule]:
    """The rules for ``caller`` that speak of ``field`` (``rdf:type``: of its class too)."""
    return [
        r
        for r in rules
        if (r.covers(field) or (field == RDF_TYPE and r.classes & resource.types)) and r.applies_to(caller)
    ]


def _hindrance(rule: Rule, resource: _Resource, now: dt.datetime) -> str | None:
    """What keeps a permit that covers a field from releasing it (None: nothing)."""
    if not rule.in_force(now):
        return "is not in force now"
    outcome = _matches(rule, resource)
    if outcome is False:
        return "the resource does not match its selector"
    if outcome is None:
        return "a value its condition needs is missing or cannot be compared"
    return None


def _matches(rule: Rule, resource: _Resource) -> bool | None:
    return matches(rule, resource.subject, resource.types, resource.lookup)
