"""What a caller is told about the fields it did not get: from its view and the policy.

Non-interference (DESIGN.md): nothing a caller receives may depend on data outside its
view. A count of the withheld triples would (the municipality would learn which homes
have insulation values on record), so a notice is computed from three things the caller
is entitled to: the resource's triples in its view (its IRI, the classes and fields it
sees), the caller's grant, and the owner's policy. It never looks at the data.

For a resource the caller sees, the notice names the fields the owner's policy mentions
for resources like this one (rules whose class selector admits a class the caller sees,
whose IRI patterns match) that the caller does not see here and that its grant does not
release: no permit of its grant admitting such a resource covers the field, or a deny
without conditions does. Whether this resource holds values for them is not said. It
also says when the grant releases no such resource in full (no permit for *all* fields
without conditions), so that fields the policy never names may be withheld as well.
Conditions are not evaluated: they may read values the caller does not see.

The engine's ``Decision.withheld`` (the real count) stays for the owner's audit log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pyoxigraph as ox

from gateway.policy.model import Grant, PolicySet, Rule

__all__ = ["Notice", "Withheld", "notice", "selects"]

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"


@dataclass(frozen=True, slots=True)
class Notice:
    """Fields withheld from the caller on one resource, as the policy says (never the data)."""

    owner: str  # whose policy: the node's party, as the caller should read it
    fields: tuple[str, ...]  # field IRIs the policy names and does not release to the caller, sorted
    partial: bool  # fields the policy does not name may be withheld too

    @property
    def count(self) -> int:
        """How many named fields are withheld: the ``dsgo-withheld-fields`` header."""
        return len(self.fields)

    @property
    def header(self) -> str:
        """The ``dsgo-withheld`` header: the fields as ``<IRI>``s, then ``*`` when fields the
        policy does not name may be withheld too (so another node can say what it was told)."""
        return " ".join([*(f"<{f}>" for f in self.fields), *(["*"] if self.partial else [])])

    def text(self, curie: Callable[[str], str]) -> str:
        """The sentence a person reads (the HTML note), fields as ``curie`` shows them."""
        named = ", ".join(curie(f) for f in self.fields)
        if named and self.partial:
            what = f"withholds {named} from you, and may withhold fields it does not name"
        elif named:
            what = f"withholds {named} from you"
        else:
            what = "releases only some fields of resources like this one to you"
        return (
            f"Fields are withheld: the policy of {self.owner} {what}. "
            "Whether this resource has values for withheld fields is not shown."
        )


def notice(
    policies: PolicySet | None, grant: Grant, subject: str, visible: Sequence[ox.Triple], owner: str
) -> Notice | None:
    """The notice for ``subject``, whose triples in the caller's view are ``visible``;
    None when the caller's grant withholds nothing of resources like it."""
    if grant.everything:
        return None
    classes, shown = _seen(subject, visible)
    mine = [r for r in grant.rules if selects(r, subject, classes)]
    every = {id(r): r for r in (*(policies.rules if policies else ()), *grant.rules)}
    named = _named(r for r in every.values() if selects(r, subject, classes))
    fields = tuple(sorted(f for f in named - shown if not _released(mine, f)))
    partial = not any(r.effect == "permit" and r.fields is None and not r.where for r in mine)
    if not fields and not partial:
        return None
    return Notice(owner, fields, partial)


def _seen(subject: str, visible: Sequence[ox.Triple]) -> tuple[frozenset[str], frozenset[str]]:
    """The classes and fields of ``subject`` the caller sees."""
    node = ox.NamedNode(subject)
    direct = [t for t in visible if t.subject == node]
    classes = frozenset(
        t.object.value for t in direct if t.predicate.value == RDF_TYPE and isinstance(t.object, ox.NamedNode)
    )
    return classes, frozenset(t.predicate.value for t in direct)


def selects(rule: Rule, subject: str, classes: frozenset[str]) -> bool:
    """Whether ``rule``'s selector admits a resource with this IRI and these visible
    classes (its conditions are not evaluated)."""
    if rule.classes and not rule.classes & classes:
        return False
    return not rule.iris or any(p.match(subject) for p in rule.iris)


def _named(rules: Iterable[Rule]) -> set[str]:
    """The fields these rules name: their field lists and their exclusions."""
    out: set[str] = set()
    for rule in rules:
        out |= rule.fields or frozenset()
        out |= rule.exclude
    return out


def _released(mine: list[Rule], field: str) -> bool:
    """Whether the caller's rules for such a resource may release ``field``: a permit
    covers it and no deny without conditions does."""
    if any(r.effect == "deny" and not r.where and r.covers(field) for r in mine):
        return False
    return any(r.effect == "permit" and (r.covers(field) or (field == RDF_TYPE and r.classes)) for r in mine)


@dataclass(frozen=True, slots=True)
class Withheld:
    """What an owner's node said it withheld, as a reading node collects it from the
    ``dsgo-withheld`` headers of its answers (the fields, and whether it said ``*``)."""

    fields: frozenset[str] = frozenset()
    partial: bool = False

    @classmethod
    def from_header(cls, value: str | None) -> Withheld:
        """The header as ``Notice.header`` writes it; tokens that are neither ``<IRI>``
        nor ``*`` are ignored (a peer's header is its word, not ours to trust further)."""
        tokens = (value or "").split()
        fields = frozenset(t[1:-1] for t in tokens if len(t) > 2 and t[0] == "<" and t[-1] == ">")
        return cls(fields, "*" in tokens)

    def __or__(self, other: Withheld) -> Withheld:
        return Withheld(self.fields | other.fields, self.partial or other.partial)

    def __bool__(self) -> bool:
        return bool(self.fields) or self.partial

    def text(self, curie: Callable[[str], str], owner: str, reader: str) -> str:
        """The sentence a person of ``reader`` reads on ``owner``'s resource (the fields as
        ``curie`` shows them), saying when there may be more than those named."""
        named = ", ".join(sorted(curie(f) for f in self.fields))
        what = named or "some fields of resources like this one"
        more = ", and may withhold fields it does not name" if named and self.partial else ""
        return f"Withheld by {owner}: its policy withholds {what} from {reader}{more}."
