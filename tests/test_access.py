"""``Access``, the one enforcement point, on its own: policy reloads and their failures,
the health report, resources, collections, views and their reuse, class counts on the
embedded store and on a remote one (within and beyond the budget), explanations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyoxigraph as ox
import pytest

from gateway.access import REMOTE_COUNT_BUDGET, Access
from gateway.policy.conditions import MemoLookup
from gateway.policy.model import Caller, Grant
from gateway.store.local import Store
from gateway.vocab import load_vocab

VOCAB = load_vocab()
NS = "https://data.test.example/"
B1, B2, S1 = NS + "id/building/1", NS + "id/building/2", NS + "id/storey/1"
MUNI, CORP = "EU.EORI.NL000000003", "EU.EORI.NL000000002"
BOT = "https://w3id.org/bot#"
LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
CODE = "https://vocab.dsgo.example/def#municipalityCode"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
NOW = 1_900_000_000.0

DATA = f"""
@prefix bot: <{BOT}> .
@prefix dsgo: <https://vocab.dsgo.example/def#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
<{B1}> a bot:Building ; rdfs:label "One" ; dsgo:municipalityCode "0363" ; bot:hasStorey <{S1}> .
<{B2}> a bot:Building ; rdfs:label "Two" ; dsgo:municipalityCode "0344" .
<{S1}> a bot:Storey ; rdfs:label "Ground floor" .
"""

POLICY = f"""
rules:
  - id: muni-0363
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources:
      classes: [bot:Building]
      where: [{{property: dsgo:municipalityCode, equals: "0363"}}]
    fields: [rdfs:label]
  - id: corp-labels
    effect: permit
    to: {{parties: [{CORP}]}}
    resources: all
    fields: [rdfs:label]
"""


def store_of(data: str = DATA) -> Store:
    store = Store(None)
    store.replace_source("s", [q.triple for q in ox.parse(data.encode(), ox.RdfFormat.TURTLE)], "1")
    return store


def access_of(tmp_path: Path, policy: str | None = POLICY, store: Any = None, **options: Any) -> Access:
    folder = None
    if policy is not None:
        folder = tmp_path / "policies"
        folder.mkdir(exist_ok=True)
        (folder / "policy.yaml").write_text(policy)
    return Access(
        store or store_of(),
        VOCAB,
        folder,
        open_node=options.pop("open_node", False),
        clock=lambda: NOW,
        **options,
    )


# -- policy files -------------------------------------------------------------------------


def _rewrite(access: Access, text: str) -> None:
    assert access.dir is not None
    path = access.dir / "policy.yaml"
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a change the fingerprint sees


def test_refresh_without_a_policy_folder_changes_nothing(tmp_path: Path) -> None:
    assert access_of(tmp_path, None).refresh() is False


def test_refresh_of_unchanged_files_changes_nothing(tmp_path: Path) -> None:
    access = access_of(tmp_path)
    before = access.policies
    assert access.refresh() is False and access.policies is before


def test_refresh_of_a_changed_file_puts_the_new_policy_in_force(tmp_path: Path) -> None:
    access = access_of(tmp_path)
    version = access.policies.version if access.policies else None
    _rewrite(access, POLICY.replace("fields: [rdfs:label]\n  - id: corp", "fields: all\n  - id: corp"))
    assert access.refresh() is True
    assert access.policies is not None and access.policies.version != version
    assert access.health()["status"] == "ok"


def test_a_broken_file_keeps_the_previous_policy_and_shows_in_health(tmp_path: Path) -> None:
    access = access_of(tmp_path)
    before = access.policies
    _rewrite(access, POLICY.replace("effect: permit", "effect: allow", 1))
    assert access.refresh() is False and access.policies is before
    health = access.health()
    assert health["status"] == "failed" and health["rules"] == 2
    assert health["error"]["line"] == 3 and health["error"]["rule"] == "muni-0363"
    assert "effect" in health["error"]["detail"]


def test_a_broken_file_is_not_read_again_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access = access_of(tmp_path)
    _rewrite(access, "rules: [")
    assert access.refresh() is False
    failure = access.failure
    import gateway.access as module

    monkeypatch.setattr(module, "load_policies", lambda *a: pytest.fail("read again"))
    assert access.refresh() is False and access.failure is failure


def test_a_fixed_file_clears_the_failure(tmp_path: Path) -> None:
    access = access_of(tmp_path)
    _rewrite(access, "rules: [")
    access.refresh()
    _rewrite(access, POLICY)
    assert access.refresh() is True and access.failure is None and "error" not in access.health()


def test_removing_every_policy_file_withdraws_every_rule(tmp_path: Path) -> None:
    access = access_of(tmp_path)
    (tmp_path / "policies" / "policy.yaml").unlink()
    assert access.refresh() is True
    assert access.policies is not None and access.policies.rules == ()
    assert access.resource(access.grant(Caller(MUNI)), B1) is None


def test_files_that_cannot_be_read_keep_the_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    access = access_of(tmp_path)
    before = access.policies

    def vanished() -> str:
        raise FileNotFoundError("policy.yaml")  # removed between listing and reading

    monkeypatch.setattr(access, "_files_fingerprint", vanished)
    assert access.refresh() is False and access.policies is before


@pytest.mark.parametrize(
    ("policy", "open_node", "expected"),
    [(None, False, ("none", 0, None)), (None, True, ("ok", 0, None)), (POLICY, False, ("ok", 2, "version"))],
)
def test_health_reports_the_policy_in_force(
    tmp_path: Path, policy: str | None, open_node: bool, expected: tuple[str, int, str | None]
) -> None:
    access = access_of(tmp_path, policy, open_node=open_node)
    health = access.health()
    version = access.policies.version if access.policies else None
    assert (health["status"], health["rules"], health["version"]) == (
        expected[0],
        expected[1],
        version if expected[2] else None,
    )
    assert "error" not in health


# -- reads --------------------------------------------------------------------------------


def test_a_resource_is_the_callers_view_of_it(tmp_path: Path) -> None:
    access = access_of(tmp_path)
    decision = access.resource(access.grant(Caller(MUNI)), B1)
    assert decision is not None and decision.released == {LABEL, RDF_TYPE}


def test_a_resource_the_caller_may_see_nothing_of_is_none(tmp_path: Path) -> None:
    access = access_of(tmp_path)
    assert access.resource(access.grant(Caller(MUNI)), B2) is None
    assert access.resource(access.grant(Caller(MUNI)), NS + "id/building/404") is None


def test_members_are_those_whose_class_the_caller_may_see(tmp_path: Path) -> None:
    access = access_of(tmp_path)
    assert access.members(access.grant(Caller(MUNI)), BOT + "Building", NS) == [B1]
    assert access.members(access.grant(Caller(CORP)), BOT + "Building", NS) == []  # labels, no types


def test_a_member_is_one_whose_visible_type_is_that_class_not_any_type(tmp_path: Path) -> None:
    data = f'<{B1}> a <{BOT}Building>, <{BOT}Zone> ; <{LABEL}> "x" .'
    policy = f"""
rules:
  - id: buildings
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources: {{classes: [bot:Building]}}
    fields: [rdfs:label]
"""
    access = access_of(tmp_path, policy, store=store_of(data))
    grant = access.grant(Caller(MUNI))
    assert access.members(grant, BOT + "Building", NS) == [B1]
    assert access.members(grant, BOT + "Zone", NS) == []  # its Zone type is not released


def test_members_of_an_open_node_are_all_of_the_class(tmp_path: Path) -> None:
    access = access_of(tmp_path, None, open_node=True)
    assert sorted(access.members(access.grant(Caller(None)), BOT + "Building", NS)) == [B1, B2]


def _triples(store: ox.Store) -> set[tuple[str, str, str]]:
    return {(q.subject.value, q.predicate.value, q.object.value) for q in store}


def test_a_view_holds_exactly_the_callers_triples(tmp_path: Path) -> None:
    access = access_of(tmp_path)
    assert _triples(access.view(access.grant(Caller(MUNI)))) == {
        (B1, RDF_TYPE, BOT + "Building"),
        (B1, LABEL, "One"),
    }
    assert _triples(access.view(access.grant(Caller(CORP)))) == {
        (B1, LABEL, "One"),
        (B2, LABEL, "Two"),
        (S1, LABEL, "Ground floor"),
    }


def test_a_view_is_built_in_batches_of_any_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.access as module

    monkeypatch.setattr(module, "_BATCH", 1)
    access = access_of(tmp_path)
    assert len(_triples(access.view(access.grant(Caller(CORP))))) == 3


def test_equal_grants_share_one_view_until_the_data_changes(tmp_path: Path) -> None:
    store = store_of()
    access = access_of(tmp_path, store=store)
    first = access.view(access.grant(Caller(MUNI)))
    assert access.view(access.grant(Caller(MUNI))) is first
    store.replace_source(
        "s", [q.triple for q in ox.parse(DATA.replace('"One"', '"Een"').encode(), ox.RdfFormat.TURTLE)], "2"
    )
    rebuilt = access.view(access.grant(Caller(MUNI)))
    assert rebuilt is not first and (B1, LABEL, "Een") in _triples(rebuilt)


def test_views_are_kept_for_the_most_recent_grants_only(tmp_path: Path) -> None:
    access = access_of(tmp_path, max_views=1)
    muni = access.view(access.grant(Caller(MUNI)))
    assert access.view(access.grant(Caller(MUNI))) is muni
    access.view(access.grant(Caller(CORP)))
    assert access.view(access.grant(Caller(MUNI))) is not muni


def test_eight_views_are_kept_by_default(tmp_path: Path) -> None:
    access = access_of(tmp_path)
    grants = [Grant.of((), f"v{i}") for i in range(9)]  # nine distinct grants
    views = [access.view(g) for g in grants[:8]]
    assert all(access.view(g) is v for g, v in zip(grants, views, strict=False))  # all eight kept
    access.view(grants[8])  # a ninth: the least recently used goes
    assert access.view(grants[0]) is not views[0]


def test_a_recently_used_view_is_kept_over_an_older_one(tmp_path: Path) -> None:
    access = access_of(tmp_path, max_views=2)
    muni = access.view(access.grant(Caller(MUNI)))
    access.view(access.grant(Caller(CORP)))
    access.view(access.grant(Caller(MUNI)))  # used again: now the most recent
    access.view(access.grant(Caller("EU.EORI.NL000000009")))
    assert access.view(access.grant(Caller(MUNI))) is muni


def test_class_counts_count_the_callers_view(tmp_path: Path) -> None:
    access = access_of(tmp_path)
    assert access.class_counts(access.grant(Caller(MUNI)), NS) == ({BOT + "Building": 1}, None)


class RemoteLike:
    """What Access reads of a remote store (not the embedded ``Store``)."""

    def __init__(self, store: Store, totals: dict[str, int] | None = None) -> None:
        self.inner, self.totals = store, totals
        self.generation = 1

    def describe(self, iri: str) -> list[ox.Triple]:
        return self.inner.describe(iri)

    def members(self, class_iri: str, namespace: str) -> list[str]:
        return self.inner.members(class_iri, namespace)

    def objects(self, subject: str, predicate: str) -> list[Any]:
        return self.inner.objects(subject, predicate)

    def subjects(self, predicate: str, obj: str) -> list[str]:
        return self.inner.subjects(predicate, obj)

    def named_subjects(self) -> list[ox.NamedNode]:
        return self.inner.named_subjects()

    def class_counts(self, namespace: str) -> dict[str, int]:
        return self.totals if self.totals is not None else {BOT + "Building": 2, BOT + "Storey": 1}


def test_remote_class_counts_for_everything_are_the_stores_own(tmp_path: Path) -> None:
    access = access_of(tmp_path, None, store=RemoteLike(store_of()), open_node=True)
    assert access.class_counts(access.grant(Caller(None)), NS) == (
        {BOT + "Building": 2, BOT + "Storey": 1},
        None,
    )


def test_remote_class_counts_decide_each_member_and_leave_out_empty_classes(tmp_path: Path) -> None:
    access = access_of(tmp_path, store=RemoteLike(store_of()))
    assert access.class_counts(access.grant(Caller(MUNI)), NS) == ({BOT + "Building": 1}, None)


def test_remote_class_counts_of_up_to_1000_resources_are_given(tmp_path: Path) -> None:
    assert REMOTE_COUNT_BUDGET == 1000  # as documented (README, the note's own text)
    remote = RemoteLike(store_of(), {BOT + "Building": 1000})
    access = access_of(tmp_path, store=remote)
    assert access.class_counts(access.grant(Caller(MUNI)), NS) == ({BOT + "Building": 1}, None)


def test_remote_class_counts_beyond_1000_resources_are_left_out_with_a_note(tmp_path: Path) -> None:
    remote = RemoteLike(store_of(), {BOT + "Building": 1000, BOT + "Storey": 1})
    access = access_of(tmp_path, store=remote)
    counts, note = access.class_counts(access.grant(Caller(MUNI)), NS)
    assert counts == {} and note is not None and "more than 1000 resources" in note


def test_a_view_of_a_remote_store_describes_each_named_subject(tmp_path: Path) -> None:
    access = access_of(tmp_path, store=RemoteLike(store_of()))
    assert _triples(access.view(access.grant(Caller(MUNI)))) == {
        (B1, RDF_TYPE, BOT + "Building"),
        (B1, LABEL, "One"),
    }


def test_explain_uses_the_policy_in_force_at_the_injected_clock(tmp_path: Path) -> None:
    policy = POLICY.replace(
        "fields: [rdfs:label]\n  - id: corp",
        "fields: [rdfs:label]\n    valid: {until: 2020-01-01}\n  - id: corp",
    )
    access = access_of(tmp_path, policy)
    reasons = {r.field: r.reason for r in access.explain(Caller(MUNI), B1)}
    assert reasons[LABEL] == "rule muni-0363 would release it but is not in force now"


# -- the memo of one view build -------------------------------------------------------------


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def objects(self, subject: str, predicate: str) -> list[Any]:
        self.calls += 1
        return [subject]

    def subjects(self, predicate: str, obj: str) -> list[str]:
        self.calls += 1
        return [obj]


def test_the_memo_answers_a_repeated_question_once() -> None:
    inner = Counting()
    memo = MemoLookup(inner)
    assert memo.objects("a", "p") == memo.objects("a", "p") == ["a"]
    assert memo.subjects("p", "b") == memo.subjects("p", "b") == ["b"]
    assert inner.calls == 2


def test_the_memo_is_bounded() -> None:
    inner = Counting()
    memo = MemoLookup(inner, limit=2)
    for name in ("a", "b", "c", "a"):
        memo.objects(name, "p")
        memo.subjects("p", name)
    assert inner.calls == 8  # "a" was forgotten when the memo filled


def test_the_memo_keeps_answers_below_its_limit() -> None:
    inner = Counting()
    memo = MemoLookup(inner, limit=3)
    for name in ("a", "b", "a"):
        memo.objects(name, "p")
        memo.subjects("p", name)
    assert inner.calls == 4


def test_an_everything_grant_decides_every_triple(tmp_path: Path) -> None:
    access = access_of(tmp_path, None, open_node=True)
    grant = access.grant(Caller(None))
    assert grant == Grant.of((), "none", everything=True)
    assert len(_triples(access.view(grant))) == 9
