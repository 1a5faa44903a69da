"""The comparators, one per kind of value, at their boundaries; and the three-valued
conditions built on them (equality at ``at_least``/``at_most``, one matching value wins,
unknown fails a permit and satisfies a deny)."""

from __future__ import annotations

from typing import Any

import pyoxigraph as ox
import pytest

from gateway.policy.compare import compare
from gateway.policy.conditions import MAX_NODES, holds, matches, one_of
from gateway.policy.model import Condition
from tests.test_policy_engine import rule

XSD = "http://www.w3.org/2001/XMLSchema#"
S = "https://data.test.example/id/building/1"
P = "https://vocab.dsgo.example/def#p"
LINK = "https://vocab.dsgo.example/def#link"


def typed(lexical: str, datatype: str) -> ox.Literal:
    return ox.Literal(lexical, datatype=ox.NamedNode(XSD + datatype))


NUMBERS = (
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


@pytest.mark.parametrize("datatype", NUMBERS)
def test_every_xsd_number_type_compares_by_value(datatype: str) -> None:
    assert (compare(typed("7", datatype), 7), compare(typed("7", datatype), "7.0")) == (0, 0)
    assert (compare(typed("07", datatype), 8), compare(typed("7", datatype), 6)) == (-1, 1)


@pytest.mark.parametrize(
    ("term", "value", "expected"),
    [
        # numbers
        (typed("5", "integer"), 5, 0),
        (typed("5", "integer"), 5.0, 0),
        (typed("5.5", "decimal"), 5, 1),
        (typed("4.9", "decimal"), 5, -1),
        (typed("1e3", "double"), 1000, 0),
        (typed("INF", "double"), 10**300, 1),
        (typed("-INF", "double"), -(10**300), -1),
        (typed("NaN", "double"), 1, None),
        (typed("abc", "integer"), 5, None),
        (typed("5", "integer"), True, None),
        (typed("5", "integer"), [5], None),
        # a number against a policy text: by value if the text is a number
        (typed("1985", "integer"), "1990", -1),
        (typed("1995", "integer"), "1990", 1),
        (typed("1990", "integer"), "1990.0", 0),
        (typed("1990", "integer"), "the nineties", None),
        # dates and years
        (typed("1985-03-01", "date"), 1985, 0),
        (typed("1985-03-01", "date"), 1986, -1),
        (typed("1985-03-01", "date"), 1984, 1),
        (typed("1985-03-01", "date"), 1984.5, 1),
        (typed("1985-03-01T12:00:00Z", "dateTime"), 1985, 0),
        (typed("-0044-03-15", "date"), -44, 0),
        (typed("12345-01-01", "date"), 12345, 0),
        (typed("not-a-date", "date"), 1990, None),
        (typed("85-03-01", "date"), 85, None),
        (typed("1985-03-01", "date"), True, None),
        (typed("1985-03-01", "date"), "1990", -1),
        (typed("1985-03-01", "date"), "1985-03-01", 0),
        (typed("1965", "gYear"), 1965, 0),
        (typed("1965Z", "gYear"), 1966, -1),
        (typed("-0044", "gYear"), -44, 0),
        (typed("1965", "gYear"), "1965", 0),
        (typed("abcd", "gYear"), 1, None),
        # booleans: false < true; the four lexical forms; anything else is invalid
        (typed("true", "boolean"), True, 0),
        (typed("false", "boolean"), False, 0),
        (typed("true", "boolean"), False, 1),
        (typed("false", "boolean"), True, -1),
        (typed("1", "boolean"), True, 0),
        (typed("0", "boolean"), False, 0),
        (typed("yes", "boolean"), True, None),
        (typed("true", "boolean"), 1, None),
        (typed("true", "boolean"), "true", 0),
        # text: strings, language-tagged strings, any other datatype
        (ox.Literal("abc"), "abc", 0),
        (ox.Literal("abc"), "abd", -1),
        (ox.Literal("abd"), "abc", 1),
        (ox.Literal("5"), 5, None),
        (ox.Literal("true"), True, None),
        (ox.Literal("Dorp", language="nl"), "Dorp", 0),
        (ox.Literal("Dorp", language="nl"), 1, None),
        (ox.Literal("x", datatype=ox.NamedNode("https://example.org/custom")), "x", 0),
        (ox.Literal("1", datatype=ox.NamedNode("https://example.org/custom")), 1, None),
        # IRIs against a text
        (ox.NamedNode("https://a.example/"), "https://a.example/", 0),
        (ox.NamedNode("https://a.example/"), "https://b.example/", -1),
        (ox.NamedNode("https://b.example/"), "https://a.example/", 1),
        (ox.NamedNode("https://a.example/"), 1, None),
        (ox.NamedNode("https://a.example/"), True, None),
        (ox.BlankNode("b"), "b", None),
    ],
)
def test_compare(term: Any, value: Any, expected: int | None) -> None:
    assert compare(term, value) == expected


# -- conditions --------------------------------------------------------------------------


class Data:
    """A lookup over a few triples: (subject, predicate) -> objects."""

    def __init__(self, triples: list[tuple[str, str, Any]]) -> None:
        self.triples = triples

    def objects(self, subject: str, predicate: str) -> list[Any]:
        return [o for s, p, o in self.triples if s == subject and p == predicate]

    def subjects(self, predicate: str, obj: str) -> list[str]:
        return [
            s for s, p, o in self.triples if p == predicate and isinstance(o, ox.NamedNode) and o.value == obj
        ]


def cond(op: str, value: Any, via: tuple[tuple[str, bool], ...] = ()) -> Condition:
    return Condition(via, P, op, value)


def with_values(*values: Any) -> Data:
    return Data([(S, P, v) for v in values])


@pytest.mark.parametrize(
    ("op", "value", "data", "expected"),
    [
        ("at_least", 5, typed("5", "integer"), True),
        ("at_least", 5, typed("4", "integer"), False),
        ("at_least", 5, typed("6", "integer"), True),
        ("at_most", 5, typed("5", "integer"), True),
        ("at_most", 5, typed("6", "integer"), False),
        ("at_most", 5, typed("4", "integer"), True),
        ("before", 5, typed("5", "integer"), False),
        ("before", 5, typed("4", "integer"), True),
        ("after", 5, typed("5", "integer"), False),
        ("after", 5, typed("6", "integer"), True),
        ("equals", True, typed("true", "boolean"), True),
        ("equals", True, typed("false", "boolean"), False),
        ("equals", False, typed("false", "boolean"), True),
        ("not_equals", True, typed("false", "boolean"), True),
        ("not_equals", True, typed("true", "boolean"), False),
        ("not_equals", True, typed("maybe", "boolean"), None),
        ("equals", "0363", ox.Literal("0363"), True),
        ("equals", "0363", ox.Literal("0344"), False),
        ("in", ["0344", "0363"], ox.Literal("0363"), True),
        ("in", ["0344", "0363"], ox.Literal("0599"), False),
        ("in", [1990, "x"], typed("1990", "integer"), True),
        ("before", 1990, typed("1985-03-01", "date"), True),
        ("before", "1990", typed("1985", "integer"), True),
        ("after", 1990, typed("not-a-date", "date"), None),
        ("at_least", 5, ox.Literal("five"), None),
    ],
)
def test_a_condition_at_its_boundary(op: str, value: Any, data: Any, expected: bool | None) -> None:
    assert holds(cond(op, value), S, with_values(data)) is expected


def test_a_missing_value_makes_a_condition_unknown() -> None:
    assert holds(cond("equals", "x"), S, with_values()) is None
    assert holds(cond("not_equals", "x"), S, with_values()) is None


@pytest.mark.parametrize(
    ("present", "wanted", "expected"), [(1, True, True), (0, True, False), (0, False, True)]
)
def test_exists_asks_whether_there_is_a_value(present: int, wanted: bool, expected: bool) -> None:
    data = with_values(*[ox.Literal("v")] * present)
    assert holds(cond("exists", wanted), S, data) is expected


def test_exists_false_is_false_when_there_is_a_value() -> None:
    assert holds(cond("exists", False), S, with_values(ox.Literal("v"))) is False


def test_one_matching_value_wins_over_incomparable_ones() -> None:
    data = with_values(ox.Literal("text"), typed("7", "integer"))
    assert holds(cond("at_least", 5), S, data) is True


def test_no_matching_value_with_an_incomparable_one_is_unknown() -> None:
    data = with_values(typed("4", "integer"), ox.Literal("text"))
    assert holds(cond("at_least", 5), S, data) is None


def test_no_matching_value_among_comparable_ones_is_false() -> None:
    data = with_values(typed("4", "integer"), typed("3", "integer"))
    assert holds(cond("at_least", 5), S, data) is False


def test_not_equals_is_false_when_any_value_equals() -> None:
    data = with_values(ox.Literal("a"), ox.Literal("b"))
    assert holds(cond("not_equals", "b"), S, data) is False


def test_not_equals_is_true_when_no_value_equals() -> None:
    data = with_values(ox.Literal("a"), ox.Literal("c"))
    assert holds(cond("not_equals", "b"), S, data) is True


def test_one_of_returns_true_as_soon_as_a_pair_is_accepted() -> None:
    assert one_of([ox.Literal("a")], ["x", 5, "a"], frozenset({0})) is True
    assert one_of([ox.Literal("a")], [5], frozenset({0})) is None
    assert one_of([], ["a"], frozenset({0})) is False


def test_a_condition_follows_links_forwards() -> None:
    other = "https://data.test.example/id/site/1"
    data = Data([(S, LINK, ox.NamedNode(other)), (other, P, ox.Literal("0363")), (S, LINK, ox.Literal("x"))])
    assert holds(cond("equals", "0363", via=((LINK, False),)), S, data) is True


def test_a_condition_follows_links_backwards() -> None:
    storey = "https://data.test.example/id/storey/1"
    data = Data([(S, LINK, ox.NamedNode(storey)), (S, P, ox.Literal("0363"))])
    assert holds(cond("equals", "0363", via=((LINK, True),)), storey, data) is True


def test_a_condition_reads_at_most_100_resources_per_step() -> None:
    assert MAX_NODES == 100
    targets = [f"https://data.test.example/id/t/{i:03d}" for i in range(101)]
    triples: list[tuple[str, str, Any]] = [(S, LINK, ox.NamedNode(t)) for t in targets]
    triples.append((targets[100], P, ox.Literal("hit")))  # only the one past the bound has it
    assert holds(cond("equals", "hit", via=((LINK, False),)), S, Data(triples)) is None
    triples.append((targets[99], P, ox.Literal("hit")))  # the last one within it
    assert holds(cond("equals", "hit", via=((LINK, False),)), S, Data(triples)) is True


def test_a_blank_node_value_makes_a_condition_unknown() -> None:
    data = with_values(ox.BlankNode("b"))
    assert holds(cond("equals", "b"), S, data) is None
    assert matches(rule(where=(cond("equals", "b"),)), S, set(), data) is None


def test_a_matching_value_after_a_blank_node_still_wins() -> None:
    data = with_values(ox.BlankNode("b"), ox.Literal("hit"))
    assert holds(cond("equals", "hit"), S, data) is True


def test_a_condition_reads_at_most_so_many_resources_at_each_step_of_the_walk() -> None:
    mids = [f"https://data.test.example/id/m/{i:03d}" for i in range(101)]
    end = "https://data.test.example/id/end"
    triples: list[tuple[str, str, Any]] = [(S, LINK, ox.NamedNode(m)) for m in mids]
    triples += [(mids[-1], LINK, ox.NamedNode(end)), (end, P, ox.Literal("hit"))]
    two_hops = ((LINK, False), (LINK, False))
    assert holds(cond("equals", "hit", via=two_hops), S, Data(triples)) is None


def test_a_rule_without_selectors_matches_every_resource() -> None:
    assert matches(rule(), S, set(), with_values()) is True


def test_a_rule_of_a_class_matches_only_resources_of_that_class() -> None:
    r = rule(classes=frozenset({"urn:A", "urn:B"}))
    assert matches(r, S, {"urn:B", "urn:C"}, with_values()) is True
    assert matches(r, S, {"urn:C"}, with_values()) is False


def test_a_rule_with_iri_patterns_matches_when_one_does() -> None:
    import re

    r = rule(iris=(re.compile("^nope$"), re.compile("^https://data\\.test\\.example/.*$")))
    assert matches(r, S, set(), with_values()) is True
    assert matches(rule(iris=(re.compile("^nope$"),)), S, set(), with_values()) is False


def test_a_false_condition_decides_even_after_an_unknown_one() -> None:
    r = rule(where=(cond("equals", "x"), Condition((), LINK, "equals", "y")))
    data = Data([(S, LINK, ox.Literal("z"))])  # P missing (unknown), LINK differs (false)
    assert matches(r, S, set(), data) is False


def test_an_unknown_condition_leaves_the_match_unknown() -> None:
    r = rule(where=(Condition((), LINK, "equals", "z"), cond("equals", "x")))
    assert matches(r, S, set(), Data([(S, LINK, ox.Literal("z"))])) is None


def test_all_conditions_true_match() -> None:
    r = rule(where=(Condition((), LINK, "equals", "z"), cond("exists", True)))
    assert matches(r, S, set(), Data([(S, LINK, ox.Literal("z")), (S, P, ox.Literal("p"))])) is True
