"""Policy files: checked when loaded, every mistake named by file, line and rule, and a
broken reload keeps the previous policy in force."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.access import Access
from gateway.errors import PolicyError
from gateway.policy.load import load_policies
from gateway.store.local import Store
from gateway.vocab import load_vocab

VOCAB = load_vocab()
GOOD = """\
description: the firm's policy
rules:
  - id: muni-energy
    effect: permit
    to: {parties: [EU.EORI.NL000000003]}
    resources:
      classes: [bot:Building]
      where:
        - {property: dsgo:municipalityCode, equals: "0363"}
    fields: [dsgo:energyLabel, dsgo:buildingYear]
    valid: {from: 2024-01-01, until: 2030-01-01}
    purpose: monitoring the energy transition
  - id: no-cost
    effect: deny
    to: {anyone: true}
    resources: all
    fields: [props:constructionCost]
"""


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_good_file_loads_with_names_resolved_through_vocab(tmp_path: Path) -> None:
    policies = load_policies([write(tmp_path, GOOD)], VOCAB)
    muni, cost = policies.rules
    assert muni.id == "muni-energy" and muni.line == 3 and muni.effect == "permit"
    assert muni.classes == {"https://w3id.org/bot#Building"}
    assert muni.fields == {
        "https://vocab.dsgo.example/def#energyLabel",
        "https://vocab.dsgo.example/def#buildingYear",
    }
    assert muni.where[0].property == "https://vocab.dsgo.example/def#municipalityCode"
    assert muni.valid_from is not None and muni.valid_from.year == 2024
    assert muni.purpose == "monitoring the energy transition"
    assert (
        cost.effect == "deny" and cost.anyone and cost.fields == {"https://w3id.org/props#constructionCost"}
    )


@pytest.mark.parametrize(
    ("change", "line", "rule", "reason"),
    [
        (("dsgo:energyLabel,", "dsgo:energyLable,"), 3, "muni-energy", "unknown property 'dsgo:energyLable'"),
        (
            ("classes: [bot:Building]", "classes: [bot:Buildin]"),
            3,
            "muni-energy",
            "unknown class 'bot:Buildin'",
        ),
        (("[props:constructionCost]", "[prop:constructionCost]"), 13, "no-cost", "unknown prefix 'prop'"),
        (('equals: "0363"', 'resembles: "0363"'), 3, "muni-energy", "resembles"),
        (("effect: deny", "effect: maybe"), 13, "no-cost", "'maybe' is not one of"),
        (("to: {anyone: true}", "to: {everybody: true}"), 13, "no-cost", "everybody"),
        (("    fields: [props:constructionCost]\n", ""), 13, "no-cost", "'fields' is a required property"),
        (("parties: [EU.EORI.NL000000003]", "parties: [bob]"), 3, "muni-energy", "does not match"),
        (("until: 2030-01-01", "until: 2020-01-01"), 3, "muni-energy", "until must be after"),
        (("from: 2024-01-01", "from: 2024-13-01"), 3, "muni-energy", "2024-13-01"),
        (("id: no-cost", "id: muni-energy"), 13, "muni-energy", "already used"),
        (("resources: all", "resources: everything"), 13, "no-cost", "everything"),
    ],
)
def test_mistakes_are_named_by_file_line_and_rule(
    tmp_path: Path, change: tuple[str, str], line: int, rule: str, reason: str
) -> None:
    assert change[0] in GOOD
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(PolicyError) as err:
        load_policies([path], VOCAB)
    assert err.value.file == str(path)
    assert err.value.line == line
    assert err.value.rule == rule
    assert reason in err.value.reason
    assert str(err.value).startswith(f"{path}:{line}: rule {rule!r}: ")


def test_invalid_yaml_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: x\n    effect: [permit\n")
    with pytest.raises(PolicyError) as err:
        load_policies([path], VOCAB)
    assert err.value.line is not None and err.value.line >= 3 and "not valid YAML" in err.value.reason


def test_a_file_without_rules_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="'rules' is a required property"):
        load_policies([write(tmp_path, "description: nothing\n")], VOCAB)


def test_unknown_top_level_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="Additional properties"):
        load_policies([write(tmp_path, GOOD + "rulez: []\n")], VOCAB)


def test_rule_ids_must_be_unique_across_files(tmp_path: Path) -> None:
    a = write(tmp_path, GOOD, "a.yaml")
    b = write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(PolicyError, match="already used in"):
        load_policies([a, b], VOCAB)


def bump(path: Path, text: str) -> None:
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_a_broken_reload_keeps_the_previous_policy_and_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    path = write(folder, GOOD)
    access = Access(Store(None), VOCAB, folder, open_node=False)
    before = access.policies
    bump(path, GOOD.replace("dsgo:energyLabel,", "dsgo:nonsense,"))
    assert access.refresh() is False
    assert access.policies is before
    health = access.health()
    assert health["status"] == "failed" and health["rules"] == 2
    assert health["error"]["rule"] == "muni-energy" and health["error"]["line"] == 3
    bump(path, GOOD.replace("monitoring the energy transition", "monitoring"))
    assert access.refresh() is True
    assert access.health()["status"] == "ok" and access.policies is not before
    assert access.policies is not None and access.policies.rules[0].purpose == "monitoring"


def test_a_broken_policy_at_start_stops_the_node(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    write(folder, GOOD.replace("bot:Building", "bot:Nope"))
    with pytest.raises(PolicyError, match="unknown class"):
        Access(Store(None), VOCAB, folder, open_node=False)
