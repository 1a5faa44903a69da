"""The policy engine step by step: the grant, the matching rules, the field table kept on
the grant, the release of each field, blank nodes; then whole decisions on real policy
files (a deny ``before: "1990"`` on numeric data, ``equals: true``), the explanations, and
``dsgo policy check``'s table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyoxigraph as ox
import pytest

from gateway.access import StoreLookup
from gateway.policy import decide as engine
from gateway.policy.decide import RDF_TYPE, decide, field_table, grant_for, granting, matching, release
from gateway.policy.explain import explain
from gateway.policy.load import load_policies
from gateway.policy.model import Caller, Condition, Grant, PolicySet, Rule
from gateway.policy.report import grant_table
from gateway.store.local import Store
from gateway.vocab import load_vocab

VOCAB = load_vocab()
NS = "https://data.test.example/"
B1, B2 = NS + "id/building/1", NS + "id/building/2"
MUNI, CORP = "EU.EORI.NL000000003", "EU.EORI.NL000000002"
DSGO = "https://vocab.dsgo.example/def#"
BOT = "https://w3id.org/bot#"
LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
YEAR, ENERGY, CODE = DSGO + "buildingYear", DSGO + "energyLabel", DSGO + "municipalityCode"
NOW = dt.datetime(2030, 6, 15, tzinfo=dt.UTC)


def rule(rule_id: str = "r", **changes: Any) -> Rule:
    base: dict[str, Any] = {
        "id": rule_id,
        "file": "f",
        "line": 1,
        "effect": "permit",
        "parties": frozenset(),
        "roles": frozenset(),
        "anyone": True,
        "classes": frozenset(),
        "iris": (),
        "where": (),
        "fields": None,
        "exclude": frozenset(),
    }
    base.update(changes)
    return Rule(**base)


def triple(s: str, p: str, o: Any) -> ox.Triple:
    return ox.Triple(ox.NamedNode(s), ox.NamedNode(p), o)


class NoData:
    def objects(self, subject: str, predicate: str) -> list[Any]:
        return []

    def subjects(self, predicate: str, obj: str) -> list[str]:
        return []


# -- the model -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (dt.datetime(2029, 12, 31, 23, 59, 59, tzinfo=dt.UTC), False),
        (dt.datetime(2030, 1, 1, tzinfo=dt.UTC), True),
        (dt.datetime(2030, 12, 31, 23, 59, 59, tzinfo=dt.UTC), True),
        (dt.datetime(2031, 1, 1, tzinfo=dt.UTC), False),
    ],
)
def test_a_rule_is_in_force_from_its_first_second_until_before_its_end(
    at: dt.datetime, expected: bool
) -> None:
    r = rule(
        valid_from=dt.datetime(2030, 1, 1, tzinfo=dt.UTC), valid_until=dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    )
    assert r.in_force(at) is expected


@pytest.mark.parametrize(
    ("changes", "caller", "expected"),
    [
        ({}, Caller(MUNI), True),
        ({}, Caller(None), False),
        ({"anyone": False, "parties": frozenset({MUNI})}, Caller(MUNI), True),
        ({"anyone": False, "parties": frozenset({MUNI})}, Caller(CORP), False),
        (
            {"anyone": False, "roles": frozenset({"Municipality"})},
            Caller(CORP, frozenset({"Municipality"})),
            True,
        ),
        ({"anyone": False, "roles": frozenset({"Municipality"})}, Caller(CORP, frozenset({"Other"})), False),
    ],
)
def test_a_rule_applies_to_the_parties_and_roles_it_names(
    changes: dict[str, Any], caller: Caller, expected: bool
) -> None:
    assert rule(**changes).applies_to(caller) is expected


def test_a_rule_covers_its_fields_minus_its_exclusions() -> None:
    assert rule().covers(LABEL) and not rule(exclude=frozenset({LABEL})).covers(LABEL)
    assert rule(fields=frozenset({LABEL})).covers(LABEL) and not rule(fields=frozenset({LABEL})).covers(YEAR)


def test_a_grant_names_its_permits_and_their_purposes_sorted() -> None:
    grant = Grant.of(
        (rule("b", purpose="p2"), rule("a", purpose="p1"), rule("d", effect="deny"), rule("c")), "v"
    )
    assert grant.permits() == (("a", "b", "c"), ("p1", "p2"))
    assert grant.key == ("v", "False", "a", "b", "c", "d")


def test_policy_set_rules_by_id() -> None:
    assert PolicySet((rule("a"), rule("b"))).by_id["b"].id == "b"


# -- the grant -----------------------------------------------------------------------------


def test_without_policies_an_open_node_grants_everything_and_any_other_nothing() -> None:
    assert grant_for(None, Caller(None), NOW, open_node=True).everything
    closed = grant_for(None, Caller(MUNI), NOW, open_node=False)
    assert not closed.everything and closed.rules == ()


def test_the_grant_holds_the_rules_for_the_caller_in_force_now() -> None:
    policies = PolicySet(
        (
            rule("mine", anyone=False, parties=frozenset({MUNI})),
            rule("theirs", anyone=False, parties=frozenset({CORP})),
            rule("over", valid_until=NOW),
            rule("now", valid_from=NOW),
        ),
        version="v1",
    )
    grant = grant_for(policies, Caller(MUNI), NOW, open_node=False)
    assert [r.id for r in grant.rules] == ["mine", "now"] and grant.version == "v1"


# -- the steps of a decision ---------------------------------------------------------------


def test_matching_sorts_rules_into_permits_and_denies_with_their_mask() -> None:
    unknown = Condition((), CODE, "equals", "0363")  # no value: unknown
    grant = Grant.of(
        (
            rule("p-yes"),
            rule("p-unknown", where=(unknown,)),
            rule("d-unknown", effect="deny", where=(unknown,)),
            rule("d-no", effect="deny", classes=frozenset({BOT + "Space"})),
            rule("p-no", classes=frozenset({BOT + "Space"})),
        ),
        "v",
    )
    found = matching(grant, B1, {BOT + "Building"}, NoData())
    assert [r.id for r in found.permits] == ["p-yes"]
    assert [r.id for r in found.denies] == ["d-unknown"]
    assert found.key == 0b00101  # the matching rules among the grant's


def test_a_link_to_a_class_iri_gives_a_resource_no_class() -> None:
    direct = [
        triple(B1, LABEL, ox.NamedNode(BOT + "Building")),
        triple(B1, RDF_TYPE, ox.Literal(BOT + "Space")),
        triple(B1, RDF_TYPE, ox.NamedNode(BOT + "Zone")),
    ]
    assert engine.types_of(direct) == {BOT + "Zone"}


def test_a_resource_no_rule_matches_sees_nothing_after_one_a_rule_matched() -> None:
    grant = Grant.of((rule("b", classes=frozenset({BOT + "Building"})),), "v")
    building = [triple(B1, RDF_TYPE, ox.NamedNode(BOT + "Building")), triple(B1, LABEL, ox.Literal("x"))]
    assert decide(grant, ox.NamedNode(B1), building, NoData()).released == {RDF_TYPE, LABEL}
    other = [triple(B2, LABEL, ox.Literal("y"))]
    decision = decide(grant, ox.NamedNode(B2), other, NoData())
    assert (decision.triples, decision.withheld) == ([], 1)


def test_a_deny_wins_over_a_permit_for_the_field_it_covers() -> None:
    permit, deny = rule("p"), rule("d", effect="deny", fields=frozenset({YEAR}))
    assert granting(YEAR, [permit], [deny]) is None
    assert granting(LABEL, [permit], [deny]) == (permit,)
    assert granting(LABEL, [rule("q", fields=frozenset({YEAR}))], []) == ()


def test_the_field_table_is_kept_on_the_grant_per_combination_of_rules() -> None:
    grant = Grant.of((rule("a"), rule("b")), "v")
    first = matching(grant, B1, set(), NoData())
    table = field_table(grant, first)
    assert field_table(grant, first) is table and grant.fields == {0b11: table}
    other = Grant.of((rule("a"), rule("b")), "v")
    assert field_table(other, first) is not table  # no cache outside the grant


def test_the_field_tables_of_a_grant_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "MAX_FIELD_TABLES", 2)
    grant = Grant.of((rule("a"),), "v")
    for key in (1, 2):
        field_table(grant, engine.Matching([], [], key))
    field_table(grant, engine.Matching([], [], 3))
    assert list(grant.fields) == [3]


def test_release_keeps_the_fields_granted_and_names_the_permits_used() -> None:
    label, year = rule("label", fields=frozenset({LABEL})), rule("year", fields=frozenset({YEAR}))
    direct = [
        triple(B1, LABEL, ox.Literal("x")),
        triple(B1, YEAR, ox.Literal("1965")),
        triple(B1, ENERGY, ox.Literal("B")),
    ]
    found = engine.Matching([label, year], [rule("d", effect="deny", fields=frozenset({YEAR}))], 7)
    table: dict[str, Any] = {}
    out = release(direct, table, found)
    assert out.visible == direct[:1] and list(out.used) == ["label"]
    assert (out.released, out.withheld) == ({LABEL}, 2)
    assert table == {LABEL: (label,), YEAR: None, ENERGY: ()}


def test_release_answers_from_the_table_once_a_field_is_decided() -> None:
    direct = [triple(B1, LABEL, ox.Literal("x"))]
    out = release(direct, {LABEL: None}, engine.Matching([rule("p")], [], 1))
    assert out.visible == [] and out.used == {} and out.withheld == 1


def test_an_rdf_type_is_released_by_the_permits_naming_its_class() -> None:
    building = rule("b", classes=frozenset({BOT + "Building"}), fields=frozenset({LABEL}))
    direct = [
        triple(B1, RDF_TYPE, ox.NamedNode(BOT + "Building")),
        triple(B1, RDF_TYPE, ox.NamedNode(BOT + "Zone")),
    ]
    out = release(direct, {}, engine.Matching([building], [], 1))
    assert out.visible == direct[:1] and list(out.used) == ["b"]


def test_an_rdf_type_a_deny_covers_is_not_released_by_its_class() -> None:
    building = rule("b", classes=frozenset({BOT + "Building"}), fields=frozenset({LABEL}))
    deny = rule("d", effect="deny", fields=frozenset({RDF_TYPE}))
    direct = [triple(B1, RDF_TYPE, ox.NamedNode(BOT + "Building"))]
    assert release(direct, {}, engine.Matching([building], [deny], 3)).visible == []


def test_an_rdf_type_that_is_not_an_iri_names_no_class() -> None:
    building = rule("b", classes=frozenset({BOT + "Building"}), fields=frozenset({LABEL}))
    direct = [triple(B1, RDF_TYPE, ox.Literal(BOT + "Building"))]
    assert release(direct, {}, engine.Matching([building], [], 1)).visible == []


def test_a_field_no_permit_covers_is_withheld_even_when_named_like_a_class() -> None:
    building = rule("b", classes=frozenset({BOT + "Building"}), fields=frozenset({LABEL}))
    direct = [triple(B1, YEAR, ox.NamedNode(BOT + "Building"))]
    assert release(direct, {}, engine.Matching([building], [], 1)).visible == []


def test_blank_nodes_come_with_the_field_that_reaches_them_transitively() -> None:
    b0, b1, b2 = ox.BlankNode("b0"), ox.BlankNode("b1"), ox.BlankNode("b2")
    visible = [triple(B1, LABEL, b0)]
    cbd = [
        *visible,
        ox.Triple(b0, ox.NamedNode(LABEL), b1),
        ox.Triple(b1, ox.NamedNode(LABEL), b0),  # a cycle
        ox.Triple(b1, ox.NamedNode(YEAR), ox.Literal("x")),
        ox.Triple(b2, ox.NamedNode(YEAR), ox.Literal("hidden")),
    ]
    assert set(engine.with_blank_nodes(visible, cbd)) == set(cbd[:4])


def test_a_blank_node_reached_twice_does_not_hide_the_others() -> None:
    b0, b2 = ox.BlankNode("b0"), ox.BlankNode("b2")
    visible = [triple(B1, LABEL, b2), triple(B1, YEAR, b0), triple(B1, ENERGY, b0)]
    cbd = [
        *visible,
        ox.Triple(b0, ox.NamedNode(LABEL), ox.Literal("a")),
        ox.Triple(b2, ox.NamedNode(LABEL), ox.Literal("b")),
    ]
    assert set(engine.with_blank_nodes(visible, cbd)) == set(cbd)


def test_an_rdf_type_no_permit_names_does_not_stop_the_fields_after_it() -> None:
    building = rule("b", classes=frozenset({BOT + "Building"}), fields=frozenset({LABEL}))
    direct = [triple(B1, RDF_TYPE, ox.NamedNode(BOT + "Zone")), triple(B1, LABEL, ox.Literal("x"))]
    assert release(direct, {}, engine.Matching([building], [], 1)).visible == direct[1:]


def test_a_decision_without_blank_nodes_is_its_visible_triples() -> None:
    visible = [triple(B1, LABEL, ox.Literal("x"))]
    assert engine.with_blank_nodes(visible, visible) is visible


# -- whole decisions -----------------------------------------------------------------------

DATA = f"""
@prefix bot: <{BOT}> .
@prefix dsgo: <{DSGO}> .
@prefix props: <https://w3id.org/props#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<{B1}> a bot:Building ; rdfs:label "Kerkstraat 1" ; dsgo:buildingYear 1965 ; dsgo:municipalityCode "0363" ;
    dsgo:energyLabel "G" ; props:isExternal true .
<{B2}> a bot:Building ; rdfs:label "Dorpsweg 2" ; dsgo:buildingYear 1995 ; dsgo:municipalityCode "0344" ;
    dsgo:energyLabel "A" ; props:isExternal false .
"""


def _decide(tmp_path: Path, policy: str, subject: str, caller: Caller | None = None) -> engine.Decision:
    (tmp_path / "p.yaml").write_text(policy)
    policies = load_policies([tmp_path / "p.yaml"], VOCAB)
    store = Store(None)
    store.replace_source("s", [q.triple for q in ox.parse(DATA.encode(), ox.RdfFormat.TURTLE)], "1")
    grant = grant_for(policies, caller or Caller(MUNI), NOW, open_node=False)
    return decide(grant, ox.NamedNode(subject), store.describe(subject), StoreLookup(store))


ALL_TO_MUNI = f"""
  - id: all
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources: all
    fields: all
    purpose: everything
"""


def test_a_deny_before_a_year_given_as_text_applies_to_numeric_data(tmp_path: Path) -> None:
    policy = f"""rules:{ALL_TO_MUNI}
  - id: old
    effect: deny
    to: {{anyone: true}}
    resources: {{where: [{{property: dsgo:buildingYear, before: "1990"}}]}}
    fields: [dsgo:energyLabel]
"""
    assert ENERGY not in _decide(tmp_path, policy, B1).released  # 1965 < "1990"
    assert ENERGY in _decide(tmp_path, policy, B2).released  # 1995


def test_a_permit_equals_true_releases_for_true_values_only(tmp_path: Path) -> None:
    policy = f"""rules:
  - id: heat-pumps
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources: {{where: [{{property: props:isExternal, equals: true}}]}}
    fields: [rdfs:label]
"""
    assert _decide(tmp_path, policy, B1).released == {LABEL}
    assert _decide(tmp_path, policy, B2).released == frozenset()


def test_a_permit_at_least_a_year_includes_that_year(tmp_path: Path) -> None:
    policy = f"""rules:
  - id: from-1965
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources: {{where: [{{property: dsgo:buildingYear, at_least: 1965}}]}}
    fields: [rdfs:label]
"""
    assert _decide(tmp_path, policy, B1).released == {LABEL}


def test_a_deny_whose_condition_is_unknown_applies(tmp_path: Path) -> None:
    policy = f"""rules:{ALL_TO_MUNI}
  - id: unknown
    effect: deny
    to: {{anyone: true}}
    resources: {{where: [{{property: dsgo:uValue, at_most: 1}}]}}
    fields: [rdfs:label]
"""
    assert LABEL not in _decide(tmp_path, policy, B1).released


def test_a_decision_counts_what_it_withholds_and_names_rules_and_purposes(tmp_path: Path) -> None:
    policy = f"""rules:{ALL_TO_MUNI}
  - id: no-label
    effect: deny
    to: {{anyone: true}}
    resources: all
    fields: [rdfs:label, dsgo:energyLabel]
"""
    decision = _decide(tmp_path, policy, B1)
    assert decision.withheld == 2 and LABEL not in decision.released and YEAR in decision.released
    assert (decision.rules, decision.purposes) == (("all",), ("everything",))
    assert all(t.predicate.value not in (LABEL, ENERGY) for t in decision.triples)


def test_a_caller_no_rule_names_sees_nothing_and_is_told_how_much(tmp_path: Path) -> None:
    decision = _decide(tmp_path, f"rules:{ALL_TO_MUNI}", B1, Caller(CORP))
    assert decision.triples == [] and decision.withheld == 6


def test_everything_is_the_whole_description_with_nothing_withheld() -> None:
    cbd = [triple(B1, LABEL, ox.Literal("x")), triple(B2, LABEL, ox.Literal("y"))]
    decision = decide(Grant.of((), "none", everything=True), ox.NamedNode(B1), cbd, NoData())
    assert decision.triples == cbd and decision.released == {LABEL} and decision.withheld == 0


def test_a_blank_subject_is_never_decided_on_its_own() -> None:
    b = ox.BlankNode("b")
    cbd = [ox.Triple(b, ox.NamedNode(LABEL), ox.Literal("x"))]
    decision = decide(Grant.of((rule(),), "v"), b, cbd, NoData())
    assert decision.triples == [] and decision.withheld == 1


# -- explanations --------------------------------------------------------------------------


def _explain(tmp_path: Path, policy: str | None, subject: str = B1) -> dict[str, str]:
    store = Store(None)
    store.replace_source("s", [q.triple for q in ox.parse(DATA.encode(), ox.RdfFormat.TURTLE)], "1")
    policies = None
    if policy is not None:
        (tmp_path / "p.yaml").write_text(policy)
        policies = load_policies([tmp_path / "p.yaml"], VOCAB)
    reasons = explain(
        policies, Caller(MUNI), ox.NamedNode(subject), store.describe(subject), StoreLookup(store), NOW
    )
    return {r.field: r.reason for r in reasons}


def test_explain_without_policies_says_default_deny(tmp_path: Path) -> None:
    assert set(_explain(tmp_path, None).values()) == {"no policies are configured: default deny"}


def test_explain_names_the_releasing_rule_and_the_denying_one(tmp_path: Path) -> None:
    policy = f"""rules:{ALL_TO_MUNI}
  - id: no-label
    effect: deny
    to: {{anyone: true}}
    resources: all
    fields: [rdfs:label]
"""
    reasons = _explain(tmp_path, policy)
    assert reasons[YEAR] == "released by all" and reasons[LABEL] == "denied by rule no-label"


def test_explain_says_what_keeps_each_permit_from_releasing(tmp_path: Path) -> None:
    policy = f"""rules:
  - id: later
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources: all
    fields: [rdfs:label]
    valid: {{from: 2031-01-01}}
  - id: elsewhere
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources: {{where: [{{property: dsgo:municipalityCode, equals: "0344"}}]}}
    fields: [rdfs:label, dsgo:energyLabel]
  - id: unknown
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources: {{where: [{{property: dsgo:uValue, at_most: 1}}]}}
    fields: [dsgo:energyLabel]
  - id: for-corp
    effect: permit
    to: {{parties: [{CORP}]}}
    resources: all
    fields: all
"""
    reasons = _explain(tmp_path, policy)
    assert reasons[LABEL] == (
        "rule later would release it but is not in force now; "
        "rule elsewhere would release it but the resource does not match its selector"
    )
    assert reasons[ENERGY] == (
        "rule elsewhere would release it but the resource does not match its selector; "
        "rule unknown would release it but a value its condition needs is missing or cannot be compared"
    )
    assert reasons[YEAR] == f"no rule releases it to {MUNI} (default deny)"


def test_explain_names_the_class_permit_that_released_a_type(tmp_path: Path) -> None:
    policy = f"""rules:
  - id: buildings
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources: {{classes: [bot:Building]}}
    fields: [rdfs:label]
"""
    reasons = _explain(tmp_path, policy)
    assert reasons[RDF_TYPE] == "released by buildings" and reasons[LABEL] == "released by buildings"


def test_explain_skips_a_deny_that_is_not_in_force(tmp_path: Path) -> None:
    policy = """rules:
  - id: old-deny
    effect: deny
    to: {anyone: true}
    resources: all
    fields: [rdfs:label]
    valid: {until: 2020-01-01}
"""
    assert _explain(tmp_path, policy)[LABEL] == f"no rule releases it to {MUNI} (default deny)"


# -- dsgo policy check's table ---------------------------------------------------------------


def test_the_grant_table_lists_permits_then_denies_per_party_and_class(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        f"""rules:
  - id: z-deny
    effect: deny
    to: {{anyone: true}}
    resources: all
    fields: [props:constructionCost]
  - id: muni
    effect: permit
    to: {{parties: [{MUNI}], roles: [Municipality]}}
    resources:
      classes: [bot:Building, bot:Storey]
      iris: ["{NS}id/*"]
      where: [{{property: dsgo:municipalityCode, equals: "0363"}}]
    fields: {{all_except: [dsgo:energyLabel, rdfs:label]}}
    valid: {{from: 2024-01-01, until: 2030-01-01}}
  - id: open-end
    effect: permit
    to: {{anyone: true}}
    resources: all
    fields: [dsgo:energyLabel, rdfs:label]
    valid: {{from: 2024-01-01}}
  - id: all-fields
    effect: permit
    to: {{parties: [{CORP}]}}
    resources: all
    fields: all
    valid: {{until: 2030-01-01}}
"""
    )
    rows = grant_table(load_policies([tmp_path / "p.yaml"], VOCAB), VOCAB)
    notes = "muni; 1 IRI pattern(s); dsgo:municipalityCode equals '0363'; valid 2024-01-01..2030-01-01"
    assert rows == [
        (CORP, "any class", "all fields", "all-fields; valid ..2030-01-01"),
        (MUNI, "bot:Building", "all fields except dsgo:energyLabel, rdfs:label", notes),
        (MUNI, "bot:Storey", "all fields except dsgo:energyLabel, rdfs:label", notes),
        ("role Municipality", "bot:Building", "all fields except dsgo:energyLabel, rdfs:label", notes),
        ("role Municipality", "bot:Storey", "all fields except dsgo:energyLabel, rdfs:label", notes),
        (
            "any authenticated party",
            "any class",
            "dsgo:energyLabel, rdfs:label",
            "open-end; valid 2024-01-01..",
        ),
        ("any authenticated party", "any class", "props:constructionCost", "z-deny (DENY)"),
    ]
