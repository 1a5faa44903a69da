"""Property: whatever the data, the policies and the caller, every read path returns the
caller's view and nothing else, and the view is exactly what the policies grant.

Hypothesis draws small graphs over a fixed vocabulary (buildings, storeys, spaces, typed
and untyped values, links, shared and nested blank nodes, a subject outside the node's
namespace), policy files (permits and denies to parties, roles or anyone; classes, IRI
patterns, conditions on the resource's own values or one or two links away; fields
lists, ``all``, ``all_except``; validity periods around a fixed clock) and callers. The
files go through the real loader (``Access.refresh``), the data into the node's store.

The expected view comes from ``reference_view``, written here from the policy semantics
(the docstring of ``gateway.policy.decide``), not from the engine: default deny; a field
is released when a matching permit covers it and no matching deny does; a permit's
classes release those ``rdf:type`` values; blank nodes follow the field that reaches
them; conditions are three-valued like SPARQL's (§17.2): a missing value or one that
cannot be compared with the policy's is *unknown*, which fails a permit and satisfies a
deny; several values combine as SPARQL's ``||`` does.

Then, for each caller: ``Access`` (view, resource, members, class counts) equals the
reference, and over HTTP (the real routes, in process) resource GETs, collections, the
self-description and an adversarial SPARQL battery (variables in predicate position,
property paths of any length, ``GRAPH``, ``FROM``/``FROM NAMED``, ``DESCRIBE``,
aggregates, ``FILTER`` on withheld values, ``SERVICE``) answer exactly what the reference
view derives. The SPARQL answers equal functions of the reference view, so they cannot
depend on any triple outside it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import os
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx
import pyoxigraph as ox
import pytest
import yaml
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.access import Access
from gateway.config import load_node_settings
from gateway.http.app import create_app
from gateway.identity.parties import Party
from gateway.node import Node
from gateway.policy.model import Caller
from gateway.store.local import Store
from gateway.vocab import load_vocab
from tests.conftest import write_node
from tests.kit import CORP, FIRM, MUNI, Pki

NS = "https://data.test.example/"
OUTSIDE = "https://elsewhere.example/id/building/9"
#: where the in-process node answers
BASE_URL = "http://node.test"
PREFIXES = {
    "bot": "https://w3id.org/bot#",
    "dsgo": "https://vocab.dsgo.example/def#",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "qudt": "http://qudt.org/schema/qudt/",
}
XSD = "http://www.w3.org/2001/XMLSchema#"
RDF_TYPE = PREFIXES["rdf"] + "type"
LANG_STRING = PREFIXES["rdf"] + "langString"
HYDRA_MEMBER = "http://www.w3.org/ns/hydra/core#member"
VOID = "http://rdfs.org/ns/void#"
#: the fixed clock, at midnight: a rule is in force on its first day, not on its last
NOW = dt.datetime(2030, 6, 15, tzinfo=dt.UTC)
OTHER = "EU.EORI.NL000000009"  # a party no rule names
ROLES = ("HousingCorporation", "Municipality", "ConstructionFirm")

Term = tuple[str, ...]  # ("iri", v) | ("blank", label) | ("lit", lexical, datatype, lang)
Triple = tuple[Term, Term, Term]


def expand(name: str) -> str:
    prefix, _, local = name.partition(":")
    return PREFIXES[prefix] + local


def iri(value: str) -> Term:
    return ("iri", value)


def lit(lexical: str, datatype: str = "string", lang: str = "") -> Term:
    return ("lit", lexical, LANG_STRING if lang else XSD + datatype, lang)


# -- data -------------------------------------------------------------------------------

B1, B2 = NS + "id/building/1", NS + "id/building/2"
S1, S2, SP1 = NS + "id/building/1/storey/0", NS + "id/building/2/storey/0", NS + "id/space/1"
SUBJECTS = (B1, B2, S1, S2, SP1, OUTSIDE)
CLASSES = tuple(expand(c) for c in ("bot:Building", "bot:Storey", "bot:Space"))
BLANKS = ("b0", "b1", "b2")
_any_subject = st.sampled_from(SUBJECTS).map(iri)
_blank = st.sampled_from(BLANKS).map(lambda b: ("blank", b))
_NOT_A_CLASS = lit(CLASSES[0])  # a text that reads like a class IRI: it names no class
#: each property with the values it takes: typed and untyped, comparable and not
VALUES: dict[str, st.SearchStrategy[Term]] = {
    RDF_TYPE: st.sampled_from([*map(iri, CLASSES), *map(iri, CLASSES), _NOT_A_CLASS]),
    expand("rdfs:label"): st.sampled_from([lit("Kerkstraat 1"), lit("Dorp", lang="nl"), lit("0363")]),
    expand("dsgo:municipalityCode"): st.sampled_from([lit("0363"), lit("0344"), lit("363", "integer")]),
    expand("dsgo:energyLabel"): st.sampled_from([lit("A"), lit("C"), lit("F")]),
    expand("dsgo:buildingYear"): st.sampled_from(
        [lit("1968", "gYear"), lit("1985", "gYear"), lit("1995", "gYear"), lit("1968")]
    ),
    expand("dsgo:rcRoof"): st.sampled_from(
        [lit("2.5", "decimal"), lit("3", "integer"), lit("0.5", "decimal")]
    ),
    expand("dsgo:bagPand"): st.sampled_from(
        [iri("https://bag.example/pand/1"), iri("https://bag.example/pand/2")]
    ),
    expand("dsgo:floorArea"): _blank,
    expand("bot:hasStorey"): st.one_of(st.sampled_from([S1, S2]).map(iri), _any_subject),
    expand("bot:hasSpace"): st.one_of(st.just(iri(SP1)), _any_subject),
}
#: what blank nodes say: a number, a label, or another (possibly cyclic) blank node
BLANK_VALUES: dict[str, st.SearchStrategy[Term]] = {
    expand("qudt:numericValue"): st.sampled_from([lit("81", "integer"), lit("2.5", "decimal")]),
    expand("rdfs:label"): st.sampled_from([lit("nested"), lit("0363")]),
    expand("rdfs:comment"): _blank,
}


@st.composite
def datasets(draw: st.DrawFn) -> frozenset[Triple]:
    triples: set[Triple] = set()
    for subject in SUBJECTS:
        for p, values in VALUES.items():  # most fields, some twice
            for _ in range(draw(st.sampled_from((0, 1, 1, 2)))):
                triples.add((iri(subject), iri(p), draw(values)))
    for label in BLANKS:
        for _ in range(draw(st.integers(0, 2))):
            p = draw(st.sampled_from(sorted(BLANK_VALUES)))
            triples.add((("blank", label), iri(p), draw(BLANK_VALUES[p])))
    return frozenset(triples)


# -- policies ---------------------------------------------------------------------------

FIELDS = (
    "rdf:type",
    "rdfs:label",
    "dsgo:municipalityCode",
    "dsgo:energyLabel",
    "dsgo:buildingYear",
    "dsgo:rcRoof",
    "dsgo:bagPand",
    "dsgo:floorArea",
    "bot:hasStorey",
    "bot:hasSpace",
)
#: the values a condition on each property compares with: mostly of the property's own
#: kind (text, number, IRI), now and then of another, which cannot be compared
CONDITION_VALUES: dict[str, list[str | int | float]] = {
    "rdfs:label": ["Kerkstraat 1", "Dorp", "0363", "L"],
    "dsgo:municipalityCode": ["0363", "0344", "0400", 363],
    "dsgo:energyLabel": ["A", "C", "D", "F"],
    "dsgo:buildingYear": [1968, 1985, 1990, 2000, "1968"],
    "dsgo:rcRoof": [0.5, 1, 2.5, 3],
    "dsgo:bagPand": [
        "https://bag.example/pand/1",
        "https://bag.example/pand/2",
        "https://bag.example/pand/15",
    ],
    "dsgo:floorArea": ["b0", 81],
}
HOPS = ("bot:hasStorey", "^bot:hasStorey", "bot:hasSpace", "^bot:hasSpace")
PATTERNS = (NS + "id/building/*", NS + "*/storey/*", "*", B1, "https://elsewhere.example/*", NS + "id/*/1")
_DAYS = ("2030-01-01", "2030-06-15", "2030-06-16", "2031-01-01", "2029-01-01")
_OPERATORS = ("equals", "not_equals", "in", "before", "after", "exists", "at_most", "at_least")


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    cond: dict[str, Any] = {}
    hops = draw(st.sampled_from([0, 0, 1, 1, 2]))
    if hops:
        cond["via"] = draw(st.lists(st.sampled_from(HOPS), min_size=hops, max_size=hops))
    prop = cond["property"] = draw(st.sampled_from(sorted(CONDITION_VALUES)))
    own = CONDITION_VALUES[prop]
    pool = own if draw(st.integers(0, 5)) else own + [v for vs in CONDITION_VALUES.values() for v in vs]
    numbers = [v for v in pool if isinstance(v, int | float)]
    op = draw(st.sampled_from(_OPERATORS if numbers else _OPERATORS[:-2]))
    if op == "exists":
        cond[op] = draw(st.booleans())
    elif op in ("at_most", "at_least"):
        cond[op] = draw(st.sampled_from(numbers))
    elif op == "in":
        cond[op] = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
    elif op in ("equals", "not_equals"):
        cond[op] = draw(st.sampled_from([*pool, True]))
    else:
        cond[op] = draw(st.sampled_from(pool))
    return cond


@st.composite
def rules(draw: st.DrawFn, rule_id: str) -> dict[str, Any]:
    to: dict[str, Any] = draw(
        st.sampled_from(["anyone", "anyone", "parties", "roles", "both"]).flatmap(
            lambda kind: st.fixed_dictionaries(
                {"anyone": st.just(True)}
                if kind == "anyone"
                else {
                    **(
                        {"parties": st.lists(st.sampled_from([FIRM, CORP, MUNI]), min_size=1, unique=True)}
                        if kind in ("parties", "both")
                        else {}
                    ),
                    **(
                        {"roles": st.lists(st.sampled_from(ROLES), min_size=1, unique=True)}
                        if kind in ("roles", "both")
                        else {}
                    ),
                }
            )
        )
    )
    resources: Any = "all"
    if draw(st.integers(0, 3)):
        resources = {}
        while not resources:
            if draw(st.booleans()):
                resources["classes"] = draw(
                    st.lists(
                        st.sampled_from(["bot:Building", "bot:Storey", "bot:Space"]), min_size=1, unique=True
                    )
                )
            if draw(st.integers(0, 3)) == 0:
                resources["iris"] = draw(
                    st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2, unique=True)
                )
            if draw(st.booleans()):
                resources["where"] = draw(st.lists(conditions(), min_size=1, max_size=2))
    names = st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True)
    fields = draw(st.one_of(st.just("all"), names, names.map(lambda n: {"all_except": n})))
    rule: dict[str, Any] = {
        "id": rule_id,
        "effect": draw(st.sampled_from(["permit", "permit", "deny"])),
        "to": to,
        "resources": resources,
        "fields": fields,
    }
    start, until = draw(st.sampled_from((None,) * 8 + _DAYS)), draw(st.sampled_from((None,) * 8 + _DAYS))
    valid = {k: v for k, v in (("from", start), ("until", until)) if v is not None}
    if start and until and until <= start:
        del valid["until"]
    if valid:
        rule["valid"] = valid
    if draw(st.booleans()):
        rule["purpose"] = f"purpose of {rule_id}"
    return rule


@st.composite
def policy_files(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """One or two files of rules (ids unique across them); a file may have none."""
    count = draw(st.integers(0, 6))
    drawn = [draw(rules(f"r{i}")) for i in range(count)]
    split = draw(st.integers(0, count))
    return [drawn] if draw(st.booleans()) else [drawn[:split], drawn[split:]]


callers = st.builds(
    Caller,
    st.sampled_from([FIRM, CORP, MUNI, OTHER]),
    st.frozensets(st.sampled_from(ROLES), max_size=2),
)


@dataclass(frozen=True)
class World:
    data: frozenset[Triple]
    files: list[list[dict[str, Any]]]
    callers: list[Caller]

    @property
    def rules(self) -> list[dict[str, Any]]:
        return [r for f in self.files for r in f]


worlds = st.builds(
    World,
    datasets(),
    policy_files(),
    st.lists(callers, min_size=1, max_size=3, unique=True),
)


# -- the reference semantics --------------------------------------------------------------


def _day(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def ref_in_force(rule: dict[str, Any]) -> bool:
    valid = rule.get("valid", {})
    start, until = _day(valid.get("from")), _day(valid.get("until"))
    return (start is None or start <= NOW) and (until is None or until > NOW)


def ref_applies(rule: dict[str, Any], caller: Caller) -> bool:
    if caller.party_id is None:
        return False
    to = rule["to"]
    return bool(
        to.get("anyone")
        or caller.party_id in to.get("parties", ())
        or caller.roles & set(to.get("roles", ()))
    )


def ref_covers(rule: dict[str, Any], predicate: str) -> bool:
    fields = rule["fields"]
    if fields == "all":
        return True
    if isinstance(fields, dict):
        return predicate not in {expand(f) for f in fields["all_except"]}
    return predicate in {expand(f) for f in fields}


def ref_classes(rule: dict[str, Any]) -> set[str]:
    resources = rule["resources"]
    return set() if resources == "all" else {expand(c) for c in resources.get("classes", ())}


def glob(pattern: str, text: str) -> bool:
    """``*`` matches any run of characters; nothing else is special."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return text == pattern
    head, tail = parts[0], parts[-1]
    if len(text) < len(head) + len(tail) or not text.startswith(head) or not text.endswith(tail):
        return False
    pos, end = len(head), len(text) - len(tail)
    for middle in parts[1:-1]:
        found = text.find(middle, pos, end)
        if found < 0:
            return False
        pos = found + len(middle)
    return True


def compare(term: Term, value: Any) -> int | None:
    """Order of an RDF term against a policy value; None when they cannot be compared."""

    def order(a: Any, b: Any) -> int:
        return -1 if a < b else (1 if a > b else 0)

    if term[0] == "blank" or isinstance(value, bool):
        return None  # no boolean data is drawn
    if term[0] == "iri":
        return order(term[1], value) if isinstance(value, str) else None
    lexical, datatype = term[1], term[2]
    numeric = datatype in (XSD + "integer", XSD + "decimal")
    if isinstance(value, int | float):
        if numeric:
            return order(Decimal(lexical), Decimal(str(value)))
        if datatype == XSD + "gYear":
            return order(int(lexical), value)
        return None
    if numeric:
        try:
            return order(Decimal(lexical), Decimal(value))
        except InvalidOperation:
            return None
    return order(lexical, value)


def any_of(outcomes: Iterable[bool | None]) -> bool | None:
    """SPARQL's ``||`` over several values: true wins, then unknown, then false."""
    seen = list(outcomes)
    return True if True in seen else (None if None in seen else False)


def ref_condition(cond: dict[str, Any], subject: str, data: frozenset[Triple]) -> bool | None:
    nodes = {subject}
    for hop in cond.get("via", ()):
        link = iri(expand(hop.lstrip("^")))
        if hop.startswith("^"):
            nodes = {
                s[1] for s, p, o in data if p == link and o[0] == "iri" and o[1] in nodes and s[0] == "iri"
            }
        else:
            nodes = {
                o[1] for s, p, o in data if s[0] == "iri" and s[1] in nodes and p == link and o[0] == "iri"
            }
    prop = iri(expand(cond["property"]))
    values = [o for s, p, o in data if s[0] == "iri" and s[1] in nodes and p == prop]
    op = next(k for k in cond if k not in ("via", "property"))
    wanted = cond[op]
    if op == "exists":
        return bool(values) is bool(wanted)
    if not values:
        return None

    def test(c: int | None) -> bool | None:
        if c is None:
            return None
        return {
            "equals": c == 0,
            "in": c == 0,
            "not_equals": c == 0,  # negated below
            "before": c < 0,
            "after": c > 0,
            "at_most": c <= 0,
            "at_least": c >= 0,
        }[op]

    outcome = any_of(test(compare(v, w)) for v in values for w in (wanted if op == "in" else [wanted]))
    if op == "not_equals":
        return None if outcome is None else not outcome
    return outcome


def ref_matches(rule: dict[str, Any], subject: str, data: frozenset[Triple]) -> bool | None:
    resources = rule["resources"]
    if resources == "all":
        return True
    types = {o[1] for s, p, o in data if s == iri(subject) and p == iri(RDF_TYPE) and o[0] == "iri"}
    classes = ref_classes(rule)
    if classes and not classes & types:
        return False
    patterns = resources.get("iris", ())
    if patterns and not any(glob(p, subject) for p in patterns):
        return False
    outcomes = [ref_condition(c, subject, data) for c in resources.get("where", ())]
    return False if False in outcomes else (None if None in outcomes else True)


@dataclass(frozen=True)
class RefDecision:
    triples: frozenset[Triple]
    released: frozenset[str]
    withheld: int
    rules: tuple[str, ...]
    purposes: tuple[str, ...]


def ref_decide(rules: Sequence[dict[str, Any]], subject: str, data: frozenset[Triple]) -> RefDecision:
    direct = [t for t in data if t[0] == iri(subject)]
    permits = [r for r in rules if r["effect"] == "permit" and ref_matches(r, subject, data) is True]
    denies = [r for r in rules if r["effect"] == "deny" and ref_matches(r, subject, data) is not False]
    visible: set[Triple] = set()
    credited: set[str] = set()
    for t in direct:
        field = t[1][1]
        if any(ref_covers(d, field) for d in denies):
            continue
        releasing = [r["id"] for r in permits if ref_covers(r, field)]
        if not releasing and field == RDF_TYPE and t[2][0] == "iri":
            releasing = [r["id"] for r in permits if t[2][1] in ref_classes(r)]
        if releasing:
            visible.add(t)
            credited.update(releasing)
    todo = [t[2] for t in visible if t[2][0] == "blank"]
    reached: set[Term] = set()
    while todo:
        node = todo.pop()
        if node not in reached:
            reached.add(node)
            for t in data:
                if t[0] == node:
                    visible.add(t)
                    todo.append(t[2])
    released = {t[1][1] for t in direct if t in visible}
    purposes = {r["purpose"] for r in permits if r["id"] in credited and r.get("purpose")}
    return RefDecision(
        frozenset(visible),
        frozenset(released),
        len({t[1][1] for t in direct} - released),
        tuple(sorted(credited)),
        tuple(sorted(purposes)),
    )


def ref_grant(world: World, caller: Caller) -> list[dict[str, Any]]:
    return [r for r in world.rules if ref_applies(r, caller) and ref_in_force(r)]


def _named_fields(rule: dict[str, Any]) -> set[str]:
    fields = rule["fields"]
    names = fields["all_except"] if isinstance(fields, dict) else ([] if fields == "all" else fields)
    return {expand(f) for f in names}


def ref_notice(world: World, caller: Caller, subject: str, triples: frozenset[Triple]) -> str | None:
    """The ``dsgo-withheld-fields`` header, from the view and the policy (the docstring of
    ``gateway.policy.notice``): of the fields any rule selecting such a resource (by its
    visible classes and its IRI, conditions unread) names, those the caller does not see
    and that no permit of its grant may release (or a deny without conditions withholds);
    sent too when no permit of all fields without conditions selects it."""
    direct = [t for t in triples if t[0] == iri(subject)]
    classes = {o[1] for _, p, o in direct if p == iri(RDF_TYPE) and o[0] == "iri"}
    shown = {p[1] for _, p, _ in direct}

    def selects(rule: dict[str, Any]) -> bool:
        resources = rule["resources"]
        if resources == "all":
            return True
        wanted = ref_classes(rule)
        patterns = resources.get("iris", ())
        return (not wanted or bool(wanted & classes)) and (
            not patterns or any(glob(g, subject) for g in patterns)
        )

    named = {f for r in world.rules if selects(r) for f in _named_fields(r)}
    mine = [r for r in ref_grant(world, caller) if selects(r)]

    def conditional(rule: dict[str, Any]) -> bool:
        return rule["resources"] != "all" and bool(rule["resources"].get("where"))

    def released(field: str) -> bool:
        if any(r["effect"] == "deny" and not conditional(r) and ref_covers(r, field) for r in mine):
            return False
        return any(
            r["effect"] == "permit" and (ref_covers(r, field) or (field == RDF_TYPE and ref_classes(r)))
            for r in mine
        )

    withheld = [f for f in named - shown if not released(f)]
    partial = not any(
        r["effect"] == "permit"
        and (r["fields"] == "all" or isinstance(r["fields"], dict))
        and not conditional(r)
        for r in mine
    )
    return str(len(withheld)) if withheld or partial else None


def reference_view(world: World, caller: Caller) -> dict[str, RefDecision]:
    """Each named subject's decision; the view is the union of their triples."""
    rules = ref_grant(world, caller)
    subjects = sorted({s[1] for s, _, _ in world.data if s[0] == "iri"})
    return {s: ref_decide(rules, s, world.data) for s in subjects}


def union(decisions: dict[str, RefDecision]) -> frozenset[Triple]:
    return frozenset(t for d in decisions.values() for t in d.triples)


# -- terms between the reference and pyoxigraph ------------------------------------------


def to_ox_triple(triple: Triple) -> ox.Triple:
    s, p, o = map(to_ox, triple)
    assert not isinstance(s, ox.Literal) and isinstance(p, ox.NamedNode)
    return ox.Triple(s, p, o)


def to_ox(term: Term) -> ox.NamedNode | ox.BlankNode | ox.Literal:
    if term[0] == "iri":
        return ox.NamedNode(term[1])
    if term[0] == "blank":
        return ox.BlankNode(term[1])
    if term[3]:
        return ox.Literal(term[1], language=term[3])
    return ox.Literal(term[1], datatype=ox.NamedNode(term[2]))


def from_ox(term: Any) -> Term:
    if isinstance(term, ox.NamedNode):
        return iri(term.value)
    if isinstance(term, ox.BlankNode):
        return ("blank", term.value)
    assert isinstance(term, ox.Literal)
    return ("lit", term.value, term.datatype.value, term.language or "")


def triples_of(items: Iterable[Any]) -> frozenset[Triple]:
    return frozenset((from_ox(t.subject), from_ox(t.predicate), from_ox(t.object)) for t in items)


def from_json(binding: dict[str, str]) -> Term:
    kind, value = binding["type"], binding["value"]
    if kind == "uri":
        return iri(value)
    if kind == "bnode":
        return ("blank", value)
    lang = binding.get("xml:lang", "")
    return ("lit", value, LANG_STRING if lang else binding.get("datatype", XSD + "string"), lang)


def sparql_term(term: Term) -> str:
    if term[0] == "iri":
        return f"<{term[1]}>"
    return f'"{term[1]}"@{term[3]}' if term[3] else f'"{term[1]}"^^<{term[2]}>'


# -- the node under test ----------------------------------------------------------------


class Client:
    """A synchronous face for an in-process ``httpx.AsyncClient`` (Hypothesis tests are sync)."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        self.portal, self.client = portal, client

    def get(self, path: str, headers: dict[str, str]) -> httpx.Response:
        return self.portal.call(functools.partial(self.client.get, path, headers=headers))

    def post(self, path: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.portal.call(functools.partial(self.client.post, path, content=content, headers=headers))

    def head(self, path: str, headers: dict[str, str]) -> httpx.Response:
        return self.portal.call(functools.partial(self.client.head, path, headers=headers))


@dataclass(repr=False)
class Harness:
    app: FastAPI
    client: Client
    node: Node
    policies: Path
    files: Iterator[int]
    tokens: dict[Caller, str]

    @property
    def store(self) -> Store:
        assert isinstance(self.node.store, Store)
        return self.node.store

    def load(self, world: World) -> None:
        """The world's data as the node's only source, its policies as the only files."""
        triples = [to_ox_triple(t) for t in world.data]
        self.store.replace_source("buildings", triples, fingerprint=str(next(self.files)))
        assert triples_of(self.store.quads()) == world.data  # lexical forms survive
        for old in self.policies.iterdir():
            old.unlink()
        n = next(self.files)
        for i, rules in enumerate(world.files):
            text = yaml.safe_dump({"rules": rules}, sort_keys=False)
            (self.policies / f"p{n}-{i}.yaml").write_text(text)
        assert self.node.access.refresh(), self.node.access.health()

    def headers(self, caller: Caller, accept: str) -> dict[str, str]:
        token = self.tokens.get(caller)
        if token is None:
            assert caller.party_id is not None
            roles = tuple(sorted(caller.roles))
            token = self.app.state.dsgo.auth.issuer.issue(caller.party_id, NOW.timestamp(), roles)
            self.tokens[caller] = token
        return {"authorization": f"Bearer {token}", "accept": accept}


@contextlib.asynccontextmanager
async def _running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client


#: what the participant registry says of the parties (their roles; ``OTHER`` is unknown)
REGISTERED = {
    party: Party(party, f"Party {party[-3:]}", "Active", None, None, frozenset(), (role,))
    for party, role in ((FIRM, "ConstructionFirm"), (CORP, "HousingCorporation"), (MUNI, "Municipality"))
}


async def _registered(party_id: str) -> Party | None:
    """The registry's entry for ``party_id`` (``/delegation`` asks it), without a registry:
    the harness's fixed clock lies past the test certificates' validity."""
    return REGISTERED.get(party_id)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Harness]:
    """One authenticating node (FIRM's) whose data and policies each example replaces."""
    folder = tmp_path_factory.mktemp("property")
    toml = write_node(folder, open=False, party_id=FIRM, audit=False)
    (folder / "policies").mkdir()
    toml.write_text(
        toml.read_text()
        + f'\n[keys]\ndir = "{pki.keys(FIRM)}"\n[registry]\nurl = "http://registry.invalid"\n'
        f'party_id = "EU.EORI.NL000000000"\nca = ["{pki.ca / "root.cert.pem"}"]\n'
        '[policies]\ndir = "policies"\n'
    )
    app = create_app(load_node_settings(toml, {}), watch=False, clock=NOW.timestamp)
    with (
        pytest.MonkeyPatch.context() as patch,
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(_running(app)) as client,
    ):
        patch.setattr(app.state.dsgo.auth.trust, "party", _registered)
        yield Harness(
            app, Client(portal, client), app.state.dsgo.node, folder / "policies", itertools.count(), {}
        )


#: examples per HTTP test; the in-process ``Access`` test, ten times faster, runs 5x as many
EXAMPLES = int(os.environ.get("DSGO_POLICY_EXAMPLES", "60"))
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=_QUIET)
_ACCESS_SETTINGS = settings(max_examples=5 * EXAMPLES, deadline=None, suppress_health_check=_QUIET)


# -- Access: the one enforcement point --------------------------------------------------


@_ACCESS_SETTINGS
@given(world=worlds)
def test_access_grants_exactly_the_reference_view(harness: Harness, world: World) -> None:
    harness.load(world)
    access = harness.node.access
    for caller in [*world.callers, Caller(None, frozenset(ROLES))]:
        expected = reference_view(world, caller)
        grant = access.grant(caller)
        view = union(expected)
        assert triples_of(access.view(grant)) == view
        for subject in [*SUBJECTS, S1 + "/unknown"]:
            decision = access.resource(grant, subject)
            ref = expected.get(subject)
            if ref is None or not ref.triples:
                assert decision is None, subject
                continue
            assert decision is not None, subject
            assert triples_of(decision.triples) == ref.triples
            assert (decision.released, decision.withheld) == (ref.released, ref.withheld)
            assert (decision.rules, decision.purposes) == (ref.rules, ref.purposes)
        for cls in CLASSES:
            members = sorted(
                s for (s, p, o) in view if p == iri(RDF_TYPE) and o == iri(cls) and s[1].startswith(NS)
            )
            assert access.members(grant, cls, NS) == [m[1] for m in members]
        counts = Counter(o[1] for _, p, o in view if p == iri(RDF_TYPE) and o[0] == "iri")  # classes are IRIs
        assert access.class_counts(grant, NS) == (dict(counts), None)


# -- the HTTP read paths ----------------------------------------------------------------


@_SETTINGS
@given(world=worlds)
def test_resources_collections_and_description_show_only_the_reference_view(
    harness: Harness, world: World
) -> None:
    harness.load(world)
    nt = "application/n-triples"
    for caller in world.callers:
        expected = reference_view(world, caller)
        view = union(expected)
        for subject in SUBJECTS[:-1]:  # the last is outside the namespace: not served at a path
            answer = harness.client.get(subject.removeprefix(NS[:-1]), headers=harness.headers(caller, nt))
            ref = expected.get(subject)
            if ref is None or not ref.triples:
                assert answer.status_code == 404, answer.text
                assert answer.json()["code"] == "not_found"
                continue
            assert answer.status_code == 200
            assert triples_of(ox.parse(answer.content, ox.RdfFormat.N_TRIPLES)) == ref.triples
            assert answer.headers.get("dsgo-withheld-fields") == ref_notice(
                world, caller, subject, ref.triples
            )
        for cls in ("bot:Building", "bot:Storey"):
            answer = harness.client.get(f"/collections/{cls}?limit=1000", headers=harness.headers(caller, nt))
            listed = {
                t.object.value
                for t in ox.parse(answer.content, ox.RdfFormat.N_TRIPLES)
                if t.predicate.value == HYDRA_MEMBER
            }
            members = {
                s[1]
                for s, p, o in view
                if p == iri(RDF_TYPE) and o == iri(expand(cls)) and s[1].startswith(NS)
            }
            assert listed == members
        answer = harness.client.get("/", headers=harness.headers(caller, nt))
        described = list(ox.parse(answer.content, ox.RdfFormat.N_TRIPLES))
        by = {(t.subject, t.predicate.value): t.object.value for t in described}
        parts = [t.object for t in described if t.predicate.value == VOID + "classPartition"]
        entities = {by[part, VOID + "class"]: int(by[part, VOID + "entities"]) for part in parts}
        assert entities == dict(Counter(o[1] for _, p, o in view if p == iri(RDF_TYPE) and o[0] == "iri"))
        assert int(next(t.object.value for t in described if t.predicate.value == VOID + "triples")) == len(
            view
        )


# -- SPARQL -----------------------------------------------------------------------------


def _closure(edges: set[tuple[Term, Term]]) -> set[tuple[Term, Term]]:
    reach = set(edges)
    while True:
        more = {(a, d) for a, b in reach for c, d in edges if b == c} - reach
        if not more:
            return reach
        reach |= more


class Sparql:
    def __init__(self, harness: Harness, caller: Caller) -> None:
        self.harness, self.caller = harness, caller

    def post(self, query: str, accept: str) -> Any:
        headers = self.harness.headers(self.caller, accept) | {"content-type": "application/sparql-query"}
        return self.harness.client.post("/sparql", content=query.encode(), headers=headers)

    def rows(self, query: str) -> list[dict[str, Term]]:
        answer = self.post(query, "application/sparql-results+json")
        assert answer.status_code == 200, (query, answer.text)
        return [{k: from_json(v) for k, v in b.items()} for b in answer.json()["results"]["bindings"]]

    def graph(self, query: str) -> frozenset[Triple]:
        answer = self.post(query, "application/n-triples")
        assert answer.status_code == 200, (query, answer.text)
        return triples_of(ox.parse(answer.content, ox.RdfFormat.N_TRIPLES))

    def ask(self, query: str) -> bool:
        answer = self.post(query, "application/sparql-results+json")
        assert answer.status_code == 200, (query, answer.text)
        result: bool = answer.json()["boolean"]
        return result


@_SETTINGS
@given(world=worlds)
def test_adversarial_sparql_answers_only_from_the_reference_view(harness: Harness, world: World) -> None:
    harness.load(world)
    graphs = [g.value for g in harness.store.graphs()]
    for caller in world.callers:
        expected = reference_view(world, caller)
        view = union(expected)
        q = Sparql(harness, caller)
        edges = {(s, o) for s, _, o in view}
        nodes = {n for s, _, o in view for n in (s, o)}

        assert q.graph("CONSTRUCT WHERE { ?s ?p ?o }") == view
        assert {(r["s"], r["p"], r["o"]) for r in q.rows("SELECT * WHERE { ?s ?p ?o }")} == view
        assert {r["p"] for r in q.rows("SELECT DISTINCT ?p WHERE { [] ?p [] }")} == {p for _, p, _ in view}
        for hidden in (
            "SELECT * WHERE { GRAPH ?g { ?s ?p ?o } }",
            "SELECT * FROM NAMED <urn:dsgo:meta> WHERE { GRAPH ?g { ?s ?p ?o } }",
            "SELECT * FROM <urn:dsgo:meta> WHERE { ?s ?p ?o }",
            *(f"SELECT * FROM <{g}> WHERE {{ ?s ?p ?o }}" for g in graphs),
            *(f"SELECT * FROM NAMED <{g}> WHERE {{ GRAPH <{g}> {{ ?s ?p ?o }} }}" for g in graphs),
        ):
            assert q.rows(hidden) == [], hidden
        paths = q.rows("SELECT DISTINCT ?s ?o WHERE { ?s (<urn:x>|!<urn:x>)+ ?o }")
        assert {(r["s"], r["o"]) for r in paths} == _closure(edges)
        zero = q.rows("SELECT DISTINCT ?x ?y WHERE { ?x (<urn:x>|!<urn:x>)* ?y }")
        assert {(r["x"], r["y"]) for r in zero} == _closure(edges) | {(n, n) for n in nodes}
        inverse = q.rows("SELECT DISTINCT ?s ?o WHERE { ?o ^!<urn:x> ?s }")
        assert {(r["s"], r["o"]) for r in inverse} == edges

        total = q.rows("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }")
        assert total == [{"n": lit(str(len(view)), "integer")}]
        per_field = q.rows("SELECT ?p (COUNT(*) AS ?n) WHERE { ?s ?p ?o } GROUP BY ?p")
        assert {r["p"][1]: int(r["n"][1]) for r in per_field} == dict(Counter(p[1] for _, p, _ in view))
        per_class = q.rows("SELECT ?c (COUNT(DISTINCT ?s) AS ?n) WHERE { ?s a ?c } GROUP BY ?c")
        assert {r["c"]: int(r["n"][1]) for r in per_class} == dict(
            Counter(o for _, p, o in view if p == iri(RDF_TYPE))
        )
        concat = q.rows(
            'SELECT (GROUP_CONCAT(STR(?o); SEPARATOR="|") AS ?all) WHERE { ?s ?p ?o FILTER isLiteral(?o) }'
        )
        joined = concat[0]["all"][1] if concat and "all" in concat[0] else ""
        assert sorted(filter(None, joined.split("|"))) == sorted(o[1] for _, _, o in view if o[0] == "lit")

        for subject, decision in expected.items():
            assert q.graph(f"DESCRIBE <{subject}>") == decision.triples

        withheld = sorted((s, p, o) for s, p, o in world.data - view if s[0] == "iri" and o[0] != "blank")
        for s, p, o in withheld[:3]:
            term = sparql_term(o)
            assert not q.ask(f"ASK {{ <{s[1]}> <{p[1]}> ?o FILTER(sameTerm(?o, {term})) }}")
            assert q.ask(f"ASK {{ ?s ?p ?o FILTER(sameTerm(?o, {term})) }}") == any(t[2] == o for t in view)
            assert q.ask(f'ASK {{ <{s[1]}> ?p ?o FILTER(STR(?o) = "{o[1]}") }}') == any(
                t[0] == s and t[2][0] != "blank" and t[2][1] == o[1] for t in view
            )

        refused = q.post("SELECT * WHERE { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }", "*/*")
        assert refused.status_code == 400 and refused.json()["code"] == "bad_request"
        assert "SERVICE is not allowed" in refused.json()["detail"]


# -- regressions ------------------------------------------------------------------------

VOCAB = load_vocab()


def _decide_one(tmp_path: Path, policy: str, data: str, subject: str) -> set[str]:
    """The fields of ``subject`` that MUNI may see, through ``Access`` on a fresh store."""
    (tmp_path / "policy.yaml").write_text(policy)
    store = Store(None)
    store.replace_source(
        "s", [q.triple for q in ox.parse(data.encode(), ox.RdfFormat.TURTLE, base_iri=NS)], "1"
    )
    access = Access(store, VOCAB, tmp_path, open_node=False, clock=NOW.timestamp)
    decision = access.resource(access.grant(Caller(MUNI)), subject)
    return set() if decision is None else set(decision.released)


_PERMIT_ALL_DENY_OLD = f"""
rules:
  - id: all
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources: all
    fields: all
  - id: no-old-labels
    effect: deny
    to: {{anyone: true}}
    resources:
      where: [{{property: dsgo:buildingYear, before: 1990}}]
    fields: [dsgo:energyLabel]
"""


def test_a_deny_applies_when_its_condition_meets_a_value_it_cannot_compare(tmp_path: Path) -> None:
    data = '<id/building/1> <https://vocab.dsgo.example/def#buildingYear> "1968" ; <https://vocab.dsgo.example/def#energyLabel> "F" .'
    assert _decide_one(tmp_path, _PERMIT_ALL_DENY_OLD, data, B1) == {expand("dsgo:buildingYear")}


def test_a_permit_fails_when_its_condition_meets_a_value_it_cannot_compare(tmp_path: Path) -> None:
    policy = f"""
rules:
  - id: recent
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources:
      where: [{{property: dsgo:buildingYear, at_least: 1990}}]
    fields: all
"""
    data = '<id/building/1> <https://vocab.dsgo.example/def#buildingYear> "new" .'
    assert _decide_one(tmp_path, policy, data, B1) == set()


def test_not_equals_is_false_when_one_value_equals_even_if_another_cannot_be_compared(tmp_path: Path) -> None:
    policy = f"""
rules:
  - id: all
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources: all
    fields: all
  - id: hide-unless-363
    effect: deny
    to: {{anyone: true}}
    resources:
      where: [{{property: dsgo:municipalityCode, not_equals: 363}}]
    fields: [rdfs:label]
"""
    data = (
        '<id/building/1> <https://vocab.dsgo.example/def#municipalityCode> 363, "0363" ;'
        ' <http://www.w3.org/2000/01/rdf-schema#label> "Kerkstraat 1" .'
    )
    released = _decide_one(tmp_path, policy, data, B1)
    assert released == {expand("dsgo:municipalityCode"), expand("rdfs:label")}


def test_a_subject_two_sources_describe_is_decided_whole_and_viewed_once(tmp_path: Path) -> None:
    policy = f"""
rules:
  - id: building-labels
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources: {{classes: [bot:Building]}}
    fields: [rdfs:label, dsgo:energyLabel, dsgo:floorArea]
"""
    (tmp_path / "policy.yaml").write_text(policy)
    model = f'<{B1}> a <{expand("bot:Building")}> ; <{expand("rdfs:label")}> "Kerkstraat 1" .'
    labels = (
        f'<{B1}> <{expand("rdfs:label")}> "Kerkstraat 1" ; <{expand("dsgo:energyLabel")}> "F" ;'
        f" <{expand('dsgo:floorArea')}> [ <{expand('qudt:numericValue')}> 81 ] ."
    )
    store = Store(None)
    for name, text in (("model", model), ("labels", labels)):
        store.replace_source(name, [q.triple for q in ox.parse(text.encode(), ox.RdfFormat.TURTLE)], "1")
    access = Access(store, VOCAB, tmp_path, open_node=False, clock=NOW.timestamp)
    view = [from_ox(t.predicate)[1] for t in access.view(access.grant(Caller(MUNI)))]
    assert sorted(view) == sorted(
        expand(f)
        for f in ("rdf:type", "rdfs:label", "dsgo:energyLabel", "dsgo:floorArea", "qudt:numericValue")
    )
