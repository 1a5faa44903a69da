"""The policy model: rules, their conditions, and the grant a caller holds."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Caller", "Condition", "Grant", "PolicySet", "Rule"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is reading: a party id (``None``: anonymous, on an open node) and its registry
    roles. The one caller type: what a verified access token stands for
    (``gateway.identity.tokens``) is what the policy decides for."""

    party_id: str | None
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Condition:
    """A test on the resource's own values, or on a resource reached through ``via``."""

    via: tuple[tuple[str, bool], ...]  # (predicate IRI, backwards?) hops
    property: str
    op: str  # equals, not_equals, in, before, after, at_most, at_least, exists
    value: Any


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    file: str
    line: int
    effect: str  # "permit" | "deny"
    parties: frozenset[str]
    roles: frozenset[str]
    anyone: bool
    #: resource selectors; all empty = every resource
    classes: frozenset[str]
    iris: tuple[re.Pattern[str], ...]
    where: tuple[Condition, ...]
    #: None = every field; ``exclude`` is taken out either way
    fields: frozenset[str] | None
    exclude: frozenset[str]
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    purpose: str = ""

    def applies_to(self, caller: Caller) -> bool:
        if caller.party_id is None:
            return False  # rules name authenticated parties; open nodes serve without rules
        return self.anyone or caller.party_id in self.parties or bool(self.roles & caller.roles)

    def in_force(self, now: dt.datetime) -> bool:
        return (self.valid_from is None or now >= self.valid_from) and (
            self.valid_until is None or now < self.valid_until
        )

    def covers(self, predicate: str) -> bool:
        return (self.fields is None or predicate in self.fields) and predicate not in self.exclude


@dataclass(frozen=True, slots=True)
class PolicySet:
    rules: tuple[Rule, ...]
    files: tuple[str, ...] = ()
    #: changes whenever the rules do: views and caches key on it
    version: str = ""

    @property
    def by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}


@dataclass(frozen=True, slots=True)
class Grant:
    """The rules that apply to one caller now; callers with equal grants see equal views."""

    rules: tuple[Rule, ...]
    version: str
    everything: bool = False  # an open node without policies
    key: tuple[str, ...] = field(default=())
    #: what each field comes to under one combination of matching rules (keyed by the
    #: bit mask of the matching rules among ``rules``): the same for every
    #: resource those rules match, so the engine decides each field once per combination
    #: and grant. None = denied, () = not granted. Not part of the grant's value.
    fields: dict[int, dict[str, tuple[Rule, ...] | None]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def permits(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The ids and purposes of the permits in force for the caller: what the audit log
        names for a read over the caller's whole view (a collection, the counts, SPARQL),
        where no single resource's decision says which rule released what."""
        permits = [r for r in self.rules if r.effect == "permit"]
        return tuple(sorted(r.id for r in permits)), tuple(sorted({r.purpose for r in permits if r.purpose}))

    @classmethod
    def of(cls, rules: tuple[Rule, ...], version: str, everything: bool = False) -> Grant:
        return cls(rules, version, everything, (version, str(everything), *sorted(r.id for r in rules)))
