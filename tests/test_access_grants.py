"""``Access``: grants to the second, one injected clock, delegation rules in their place.

A grant from the policy files is remembered per (party, roles), but only until the next
validity boundary of the rules that apply to the caller: a permit ends at its
``valid.until`` and begins at its ``valid.from`` exactly, whatever was asked before.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyoxigraph as ox
import pytest

from gateway.access import Access
from gateway.errors import PolicyError
from gateway.policy.decide import grant_span
from gateway.policy.load import load_policies, policy_files
from gateway.policy.model import Caller, Rule
from gateway.store.local import Store
from gateway.vocab import load_vocab

NS = "https://data.test.example/"
B1 = NS + "id/building/1"
MUNI, CORP = "EU.EORI.NL000000003", "EU.EORI.NL000000002"
VOCAB = load_vocab()
#: midnight UTC at the start of 2030-01-01: the boundary of the policy below
EDGE = dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp()

POLICY = f"""
rules:
  - id: until-2030
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources: all
    fields: [rdfs:label]
    valid: {{until: 2030-01-01}}
  - id: from-2030
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources: all
    fields: [dsgo:energyLabel]
    valid: {{from: 2030-01-01}}
  - id: corp-always
    effect: permit
    to: {{parties: [{CORP}]}}
    resources: all
    fields: all
"""

DATA = f"""
@prefix bot: <https://w3id.org/bot#> .
@prefix dsgo: <https://vocab.dsgo.example/def#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
<{B1}> a bot:Building ; rdfs:label "Kerkstraat 1" ; dsgo:energyLabel "B" .
"""

LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
ENERGY = "https://vocab.dsgo.example/def#energyLabel"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _access(tmp_path: Path, clock: Clock, policy: str = POLICY) -> Access:
    (tmp_path / "policy.yaml").write_text(policy)
    store = Store(None)
    store.replace_source("s", [q.triple for q in ox.parse(DATA.encode(), ox.RdfFormat.TURTLE)], "1")
    return Access(store, VOCAB, tmp_path, open_node=False, clock=clock)


def _released(access: Access, party: str) -> set[str]:
    decision = access.resource(access.grant(Caller(party)), B1)
    return set() if decision is None else set(decision.released)


def test_a_permit_ends_at_its_valid_until_to_the_second(tmp_path: Path) -> None:
    clock = Clock(EDGE - 1)
    access = _access(tmp_path, clock)
    assert LABEL in _released(access, MUNI)  # remembered from here on
    clock.now = EDGE
    assert LABEL not in _released(access, MUNI)


def test_a_permit_begins_at_its_valid_from_to_the_second(tmp_path: Path) -> None:
    clock = Clock(EDGE - 1)
    access = _access(tmp_path, clock)
    assert ENERGY not in _released(access, MUNI)
    clock.now = EDGE
    assert ENERGY in _released(access, MUNI)


def test_a_grant_asked_after_the_boundary_holds_when_the_clock_is_set_back(tmp_path: Path) -> None:
    clock = Clock(EDGE)
    access = _access(tmp_path, clock)
    assert _released(access, MUNI) == {ENERGY}
    clock.now = EDGE - 1
    assert _released(access, MUNI) == {LABEL}


def test_a_grant_without_boundaries_is_the_same_object_at_any_time(tmp_path: Path) -> None:
    clock = Clock(EDGE - 1000)
    access = _access(tmp_path, clock)
    first = access.grant(Caller(CORP))
    clock.now = EDGE + 10**8
    assert access.grant(Caller(CORP)) is first


def test_a_grant_is_remembered_between_boundaries(tmp_path: Path) -> None:
    clock = Clock(EDGE - 100)
    access = _access(tmp_path, clock)
    first = access.grant(Caller(MUNI))
    clock.now = EDGE - 1
    assert access.grant(Caller(MUNI)) is first
    clock.now = EDGE
    assert access.grant(Caller(MUNI)) is not first


def test_grants_are_remembered_per_party_and_roles(tmp_path: Path) -> None:
    access = _access(tmp_path, Clock(EDGE - 1))
    assert _released(access, CORP) == {LABEL, ENERGY, "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"}
    assert _released(access, MUNI) == {LABEL}
    assert access.grant(Caller(MUNI, frozenset({"x"}))).rules == access.grant(Caller(MUNI)).rules


def test_reloaded_policy_replaces_a_remembered_grant(tmp_path: Path) -> None:
    clock = Clock(EDGE - 1)
    access = _access(tmp_path, clock)
    assert LABEL in _released(access, MUNI)
    (tmp_path / "policy.yaml").write_text(POLICY.replace("fields: [rdfs:label]", "fields: [bot:hasStorey]"))
    assert access.refresh()
    assert LABEL not in _released(access, MUNI)


def test_a_broken_policy_file_is_dated_by_the_injected_clock(tmp_path: Path) -> None:
    clock = Clock(EDGE + 12.5)
    access = _access(tmp_path, clock)
    (tmp_path / "policy.yaml").write_text("rules: [")
    assert not access.refresh()
    assert access.failure is not None and access.failure.at == EDGE + 12.5
    assert isinstance(access.failure.error, PolicyError)


def _evidence(party: str, until: float) -> Rule:
    return Rule(
        id="evidence-1",
        file="delegation evidence",
        line=0,
        effect="permit",
        parties=frozenset({party}),
        roles=frozenset(),
        anyone=False,
        classes=frozenset(),
        iris=(),
        where=(),
        fields=frozenset({ENERGY}),
        exclude=frozenset(),
        valid_from=dt.datetime.fromtimestamp(EDGE - 3600, dt.UTC),
        valid_until=dt.datetime.fromtimestamp(until, dt.UTC),
    )


def test_delegation_rules_widen_the_grant_while_in_force(tmp_path: Path) -> None:
    access = _access(tmp_path, Clock(EDGE - 1))
    grant = access.grant(Caller(MUNI), (_evidence(MUNI, EDGE),))
    assert {r.id for r in grant.rules} == {"until-2030", "evidence-1"}


def test_delegation_rules_end_at_their_validity_to_the_second(tmp_path: Path) -> None:
    clock = Clock(EDGE - 1)
    access = _access(tmp_path, clock)
    rule = _evidence(MUNI, EDGE - 1)
    assert "evidence-1" not in {r.id for r in access.grant(Caller(MUNI), (rule,)).rules}


def test_delegation_rules_for_another_party_are_left_out(tmp_path: Path) -> None:
    access = _access(tmp_path, Clock(EDGE - 1))
    grant = access.grant(Caller(MUNI), (_evidence(CORP, EDGE),))
    assert grant is access.grant(Caller(MUNI))


def test_delegation_rules_are_not_added_where_the_grant_is_everything(tmp_path: Path) -> None:
    store = Store(None)
    access = Access(store, VOCAB, None, open_node=True, clock=Clock(EDGE))
    grant = access.grant(Caller(MUNI), (_evidence(MUNI, EDGE + 10),))  # evidence that applies
    assert grant.everything and grant.rules == ()


@pytest.mark.parametrize(
    ("at", "since", "until"),
    [
        (EDGE - 1, None, EDGE),
        (EDGE, EDGE, None),
        (EDGE + 1, EDGE, None),
    ],
)
def test_grant_span_runs_from_the_last_boundary_to_the_next(
    tmp_path: Path, at: float, since: float | None, until: float | None
) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    policies = load_policies(policy_files(tmp_path), VOCAB)
    start, end = grant_span(policies, Caller(MUNI), dt.datetime.fromtimestamp(at, dt.UTC))
    assert (start.timestamp() if start else None, end.timestamp() if end else None) == (since, until)


def test_grant_span_ignores_the_boundaries_of_other_parties_rules(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    policies = load_policies(policy_files(tmp_path), VOCAB)
    assert grant_span(policies, Caller(CORP), dt.datetime.fromtimestamp(EDGE, dt.UTC)) == (None, None)


def test_grant_span_without_policies_is_unbounded() -> None:
    assert grant_span(None, Caller(MUNI), dt.datetime.fromtimestamp(EDGE, dt.UTC)) == (None, None)
