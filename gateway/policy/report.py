"""Operator views of a policy: the party x class -> fields table of ``dsgo policy check``."""

from __future__ import annotations

from gateway.policy.model import PolicySet, Rule
from gateway.vocab import Vocab

__all__ = ["grant_table"]


def _who(rule: Rule) -> list[str]:
    who = sorted(rule.parties) + [f"role {r}" for r in sorted(rule.roles)]
    return who + (["any authenticated party"] if rule.anyone else [])


def _fields(rule: Rule, vocab: Vocab) -> str:
    if rule.fields is None:
        text = "all fields"
        if rule.exclude:
            text += " except " + ", ".join(sorted(vocab.curie(f) for f in rule.exclude))
        return text
    return ", ".join(sorted(vocab.curie(f) for f in rule.fields))


def _notes(rule: Rule, vocab: Vocab) -> str:
    """The rule's id (marked when a deny), its IRI patterns, conditions and validity."""
    notes = [rule.id if rule.effect == "permit" else f"{rule.id} (DENY)"]
    if rule.iris:
        notes.append(f"{len(rule.iris)} IRI pattern(s)")
    notes += [f"{vocab.curie(c.property)} {c.op} {c.value!r}" for c in rule.where]
    if rule.valid_from or rule.valid_until:
        start = f"{rule.valid_from:%Y-%m-%d}" if rule.valid_from else ""
        end = f"{rule.valid_until:%Y-%m-%d}" if rule.valid_until else ""
        notes.append(f"valid {start}..{end}")
    return "; ".join(notes)


def grant_table(policies: PolicySet, vocab: Vocab) -> list[tuple[str, str, str, str]]:
    """(party, class, fields, rule and its conditions) rows, permits then denies."""
    rows = []
    for rule in sorted(policies.rules, key=lambda r: (r.effect != "permit", r.id)):
        classes = sorted(vocab.curie(c) for c in rule.classes) or ["any class"]
        fields, notes = _fields(rule, vocab), _notes(rule, vocab)
        rows += [(who, cls, fields, notes) for who in _who(rule) for cls in classes]
    return rows
