"""The pilot's questions asked across real nodes: a registry and the four nodes of
examples/pilot/ run as `dsgo` processes on loopback, each question is asked at the node
of the party that asks it, through its federated query route, as ``dsgo demo`` asks it;
every answer is checked row by row. Then RVO's node stops (and starts again), and then the
construction firm's, and each question gets the honest partial answer: what the others
know, marked incomplete, with the node that failed named."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.demo import QUESTIONS, ask
from gateway.config import NodeSettings, load_node_settings
from gateway.identity.pki import make_ca, make_party
from tests.conftest import free_port
from tests.servers import DSGO, process
from tests.test_pilot_config import FIRM, IDS, PILOT, REGISTRY

pytestmark = pytest.mark.integration

ADDRESS_7 = "Hugo de Vrieslaan 7, 1097 EA Amsterdam"
ADDRESS_9 = "Hugo de Vrieslaan 9, 1097 EA Amsterdam"
ADDRESS_12 = "Zaaiersweg 12, 1097 SR Amsterdam"
ADDRESS_14 = "Zaaiersweg 14, 1097 SR Amsterdam"
ADDRESS_210 = "Keizer Karelweg 210, 1181 RJ Amstelveen"
ADDRESS_5 = "Achterdijk 5, 1191 JK Ouderkerk aan de Amstel"
ADDRESS_33 = "Kamerlingh Onneslaan 33, 1097 DE Amsterdam"
ADDRESS_4 = "Linnaeusparkweg 4, 1098 CT Amsterdam"


@dataclass
class Pilot:
    folder: Path
    env: dict[str, dict[str, str]]  # node -> its DSGO_* overrides
    ports: dict[str, int]
    stops: dict[str, contextlib.ExitStack] = field(default_factory=dict)

    def settings(self, node: str) -> NodeSettings:
        return load_node_settings(self.folder / node / "node.toml", self.env[node])

    def ask(self, name: str) -> dict[str, Any]:
        [question] = [q for q in QUESTIONS if q.name == name]
        text = (self.folder / "queries" / question.file).read_text(encoding="utf-8")
        answer, _ = ask(self.settings(question.asker), text)
        return answer

    def start(self, node: str) -> None:
        own = contextlib.ExitStack()
        argv = [DSGO, "serve", str(self.folder / node / "node.toml"), "--port", str(self.ports[node])]
        own.enter_context(process(argv, f"http://127.0.0.1:{self.ports[node]}", env=self.env[node]))
        self.stops[node] = own

    def stop(self, node: str) -> None:
        self.stops.pop(node).close()


def rows(answer: dict[str, Any]) -> list[tuple[str, ...]]:
    names = answer["head"]["vars"]
    return [tuple(b[n]["value"] if n in b else "" for n in names) for b in answer["results"]["bindings"]]


@pytest.fixture(scope="module")
def pilot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pilot]:
    """The pilot, copied with keys of its own, its registry and nodes on free ports."""
    root = tmp_path_factory.mktemp("pilot")
    folder = root / "examples" / "pilot"
    shutil.copytree(PILOT, folder, ignore=shutil.ignore_patterns("state", "__pycache__"))
    keys = root / "keys"
    make_ca(keys / "ca")
    for party in (REGISTRY, *IDS.values()):
        make_party(party, keys / party, keys / "ca")
    ports = {node: free_port() for node in ("registry", *IDS)}
    registry_url = f"http://127.0.0.1:{ports['registry']}"
    endpoints = ",".join(f"{IDS[n]}=http://127.0.0.1:{ports[n]}" for n in IDS)
    env = {n: {"DSGO_NODE_PORT": str(ports[n]), "DSGO_REGISTRY_URL": registry_url} for n in IDS}
    pilot = Pilot(folder, env, ports)
    with contextlib.ExitStack() as stack:
        registry = [DSGO, "registry", str(folder / "registry.toml"), "--port", str(ports["registry"])]
        stack.enter_context(process(registry, registry_url, env={"DSGO_PARTY_ENDPOINTS": endpoints}))
        try:
            for node in IDS:
                pilot.start(node)
            yield pilot
        finally:
            for own in pilot.stops.values():
                own.close()


# -- every party up: the complete answers -------------------------------------------------


def test_labels_question_still_gives_the_three_efg_homes(pilot: Pilot) -> None:
    answer = pilot.ask("labels")
    assert rows(answer) == [
        (ADDRESS_7, "G", "2018-11-22", "1965", "2026", "0.4", "0.19", "5.1"),
        (ADDRESS_12, "F", "2019-05-14", "1958", "2027", "1.3", "0.36", "2.8"),
        (ADDRESS_14, "E", "2020-02-03", "1958", "2027", "2.5", "0.36", "1.8"),
    ]
    assert answer["report"]["complete"] is True


def test_insulation_question_lists_each_part_short_of_the_standard(pilot: Pilot) -> None:
    answer = pilot.ask("insulation")
    assert answer["head"]["vars"] == [
        "address", "renovation", "roof", "facade", "floor", "window", "surveyed", "administered",
    ]  # fmt: skip
    assert rows(answer) == [
        (ADDRESS_7, "2026", "0.4 < Rc 3.5", "0.19 < Rc 1.7", "0.15 < Rc 3.5", "5.1 > U 1.4", "4", "0"),
        (ADDRESS_12, "2027", "1.3 < Rc 3.5", "0.36 < Rc 1.7", "0.15 < Rc 3.5", "2.8 > U 1.4", "4", "0"),
        (ADDRESS_14, "2027", "2.5 < Rc 3.5", "0.36 < Rc 1.7", "1.7 < Rc 3.5", "1.8 > U 1.4", "4", "0"),
        (ADDRESS_210, "2028", "1.3 < Rc 3.5", "0.36 < Rc 1.7", "0.15 < Rc 3.5", "2.9 > U 1.4", "4", "0"),
        (ADDRESS_9, "2029", "ok", "1.3 < Rc 1.7", "ok", "ok", "4", "0"),
        (ADDRESS_5, "2030", "1.5 < Rc 3.5", "0.5 < Rc 1.7", "unknown", "2.8 > U 1.4", "0", "3"),
    ]
    assert answer["report"]["complete"] is True
    assert IDS["rvo"] in answer["report"]["nodes"]  # the standard's values came from RVO's node


def test_materials_question_gives_the_biobased_share_per_home_and_of_the_stock(pilot: Pilot) -> None:
    answer = pilot.ask("materials")
    assert answer["head"]["vars"] == [
        "address", "volume", "biobased", "secondary", "biobasedShare", "secondaryShare",
        "unknownVolume", "withoutVolume",
    ]  # fmt: skip
    assert rows(answer) == [
        (ADDRESS_7, "87.94", "1.08", "0", "1.3", "0", "3.41", "4"),
        (ADDRESS_9, "100.55", "17.45", "0", "17.4", "0", "0", "4"),
        (ADDRESS_12, "36.26", "2.02", "0", "6", "0", "2.6", "4"),
        (ADDRESS_14, "41.82", "2.02", "0", "5.2", "0", "2.6", "4"),
        ("all homes surveyed", "266.57", "22.57", "0", "8.7", "0", "8.61", "16"),
    ]
    assert answer["report"]["complete"] is True


def test_materials_question_reaches_the_municipality_without_the_firms_product_names(pilot: Pilot) -> None:
    firm = pilot.ask("materials")["report"]["nodes"][FIRM]
    assert firm["withheld_fields"] > 0  # names, thicknesses and densities stay with the firm's client


def test_optoppen_question_finds_two_candidates_and_says_why_the_others_are_not(pilot: Pilot) -> None:
    answer = pilot.ask("optoppen")
    assert rows(answer) == [
        (ADDRESS_5, "1972", "", "", "", "", "", "58", "2030", "unknown: no survey model of the building"),
        (ADDRESS_7, "1965", "3", "8.4", "15", "FLAT_ROOF", "6 of 6", "54", "2026", "yes: 2 storeys"),
        (ADDRESS_9, "1965", "3", "8.4", "12", "FLAT_ROOF", "6 of 6", "54", "2029", "yes: 1 storey"),
        (ADDRESS_33, "1987", "", "", "10", "", "", "62.5", "", "unknown: no survey model of the building"),
        (ADDRESS_210, "1962", "3", "8.4", "", "FLAT_ROOF", "6 of 6", "54", "2028",
         "unknown: no maximum height published for the plot"),
        (ADDRESS_4, "2004", "", "", "13", "", "", "70", "", "unknown: no survey model of the building"),
        (ADDRESS_12, "1958", "2", "8.6", "10", "GABLE_ROOF", "2 of 3", "45.9", "2027", "no: the roof is not flat"),
        (ADDRESS_14, "1958", "2", "8.6", "10", "GABLE_ROOF", "2 of 3", "45.9", "2027", "no: the roof is not flat"),
    ]  # fmt: skip
    assert answer["report"]["complete"] is True


# -- RVO's node down, then up again: the standard is not there to check against ------------


@pytest.fixture
def rvo_down(pilot: Pilot) -> Iterator[Pilot]:
    pilot.stop("rvo")
    try:
        yield pilot
    finally:
        pilot.start("rvo")


def test_with_rvo_down_the_insulation_check_has_no_standard_to_check_against_and_says_so(
    rvo_down: Pilot,
) -> None:
    answer = rvo_down.ask("insulation")
    assert rows(answer) == []  # no home is called short, or fine, of a standard no one could read
    _failed(answer, IDS["rvo"])


def test_with_rvo_down_the_other_questions_are_answered_in_full(rvo_down: Pilot) -> None:
    answers = {name: rvo_down.ask(name) for name in ("labels", "materials", "optoppen")}
    assert {name: a["report"]["complete"] for name, a in answers.items()} == dict.fromkeys(answers, True)
    assert [len(rows(a)) for a in answers.values()] == [3, 5, 8]


# -- the firm's node down: honest partial answers -------------------------------------------


@pytest.fixture(scope="module")
def firm_down(pilot: Pilot) -> Pilot:
    pilot.stop("firm")
    return pilot


def _failed(answer: dict[str, Any], party: str) -> None:
    report = answer["report"]
    assert report["complete"] is False
    assert {f["reason"] for f in report["nodes"][party]["failures"]} == {"down"}
    assert report["nodes"][party]["documents"] == 0


def _firm_failed(answer: dict[str, Any]) -> None:
    _failed(answer, FIRM)


def test_with_the_firm_down_the_labels_rows_stay_without_the_builders_values(firm_down: Pilot) -> None:
    answer = firm_down.ask("labels")
    assert rows(answer) == [
        (ADDRESS_7, "G", "2018-11-22", "1965", "2026", "", "", ""),
        (ADDRESS_12, "F", "2019-05-14", "1958", "2027", "", "", ""),
        (ADDRESS_14, "E", "2020-02-03", "1958", "2027", "", "", ""),
    ]
    _firm_failed(answer)


def test_with_the_firm_down_the_insulation_check_falls_back_on_the_administration(firm_down: Pilot) -> None:
    answer = firm_down.ask("insulation")
    assert rows(answer) == [
        (ADDRESS_7, "2026", "unknown", "unknown", "unknown", "unknown", "0", "0"),
        (ADDRESS_12, "2027", "1.3 < Rc 3.5", "0.36 < Rc 1.7", "unknown", "2.8 > U 1.4", "0", "3"),
        (ADDRESS_14, "2027", "2.5 < Rc 3.5", "0.36 < Rc 1.7", "unknown", "1.8 > U 1.4", "0", "3"),
        (ADDRESS_210, "2028", "1.3 < Rc 3.5", "0.36 < Rc 1.7", "unknown", "2.9 > U 1.4", "0", "3"),
        (ADDRESS_9, "2029", "2.5 < Rc 3.5", "1.3 < Rc 1.7", "unknown", "1.8 > U 1.4", "0", "3"),
        (ADDRESS_5, "2030", "1.5 < Rc 3.5", "0.5 < Rc 1.7", "unknown", "2.8 > U 1.4", "0", "3"),
    ]
    _firm_failed(answer)


def test_with_the_firm_down_the_materials_question_has_no_rows_and_says_so(firm_down: Pilot) -> None:
    answer = firm_down.ask("materials")
    assert rows(answer) == []
    _firm_failed(answer)


def test_with_the_firm_down_no_home_is_called_a_candidate(firm_down: Pilot) -> None:
    answer = firm_down.ask("optoppen")
    verdicts = [row[-1] for row in rows(answer)]
    assert verdicts == ["unknown: no survey model of the building"] * 8
    _firm_failed(answer)
