"""Change notifications between real processes on loopback: a registry, a corporation's
node publishing a CSV, and a municipality's node receiving; ``dsgo subscribe`` and ``dsgo
inbox`` as people use them. Waits poll the nodes' own state with a bound, never sleep."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from tests.servers import CLIENT, DSGO, NODE, federation

pytestmark = pytest.mark.integration

PILOT = Path(__file__).resolve().parents[1] / "examples" / "pilot" / "corporation" / "data"
LABEL = "https://vocab.dsgo.example/def#energyLabel"
POLICY = f"""\
rules:
  - id: labels-for-municipality
    effect: permit
    to: {{parties: [{CLIENT}]}}
    resources:
      classes: [bot:Building]
      where: [{{property: dsgo:municipalityCode, equals: "0363"}}]
    fields: [rdfs:label, dsgo:municipalityCode, dsgo:energyLabel, dsgo:energyLabelDate]
  - id: own-data
    effect: permit
    to: {{parties: [{NODE}]}}
    resources: all
    fields: all
"""
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], what: str, within: float = 60) -> T:
    """Poll ``check`` until it gives something, at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:g} s: {what}")
        time.sleep(0.05)


@dataclass
class Pilot:
    folder: Path
    fed: Any
    csv: Path

    @property
    def sender(self) -> Path:
        return self.fed.nodes[NODE]

    @property
    def receiver(self) -> Path:
        return self.fed.nodes[CLIENT]

    def edit(self, home: str, column: int, value: str) -> None:
        """Change one cell of the corporation's CSV (the way its administration would)."""
        lines = self.csv.read_text().splitlines()
        for i, line in enumerate(lines):
            cells = line.split(";")
            if cells[0] == home:
                cells[column] = value
                lines[i] = ";".join(cells)
        self.csv.write_text("\n".join(lines) + "\n")

    def outbox(self, consumer: str = CLIENT) -> list[tuple[Any, ...]]:
        """(position, state, attempts) of the sender's notifications to ``consumer``."""
        with contextlib.closing(sqlite3.connect(self.folder / "sender" / "outbox.sqlite")) as db:
            return db.execute(
                "SELECT position, state, attempts FROM notifications WHERE subscription IN"
                " (SELECT id FROM subscriptions WHERE consumer = ?) ORDER BY position",
                (consumer,),
            ).fetchall()

    def inbox(self, node: str = "receiver") -> list[tuple[Any, ...]]:
        path = self.folder / node / "inbox.sqlite"
        if not path.exists():
            return []
        with contextlib.closing(sqlite3.connect(path)) as db:
            rows = db.execute(
                "SELECT position, body, via, duplicates FROM received ORDER BY rowid"
            ).fetchall()
        return [(p, orjson.loads(b), via, dups) for p, b, via, dups in rows]

    def dsgo(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([DSGO, *argv], capture_output=True, text=True, timeout=60, check=False)

    def subscribe(self, *options: str, by: str = CLIENT) -> dict[str, Any]:
        node = str(self.fed.nodes[by])
        done = self.dsgo("subscribe", "--as", node, "--to", self.fed.urls[NODE], "--json", *options)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = orjson.loads(done.stdout)
        return result


def _node_config(path: Path, section: str, extra: str) -> None:
    text = path.read_text().replace("[node]\n", f"[node]\n{section}", 1)
    path.write_text(text + extra)


@pytest.fixture
def pilot(tmp_path: Path) -> Pilot:
    fed = federation(tmp_path, {NODE: None, CLIENT: None}, clients=())
    for name in ("sender", "receiver"):
        (tmp_path / name).mkdir()
    shutil.copy(PILOT / "homes.csv", tmp_path / "homes.csv")
    shutil.copy(PILOT / "homes.mapping.toml", tmp_path / "homes.mapping.toml")
    (tmp_path / "sender-policies").mkdir()
    (tmp_path / "sender-policies" / "corporation.yaml").write_text(POLICY)
    sender = fed.nodes[NODE]
    text = sender.read_text().replace('dir = "policies"', 'dir = "sender-policies"')
    text = text.replace(
        'name = "buildings"\ntype = "rdf"\npath = "buildings.ttl"',
        'name = "homes"\ntype = "csv"\npath = "homes.csv"',
    )
    sender.write_text(text)
    _node_config(
        sender,
        'store = "sender/store"\npoll_interval = 0.1\naudit = "sender/audit.sqlite"\n',
        '\n[notifications]\noutbox = "sender/outbox.sqlite"\ninbox = "sender/inbox.sqlite"\nretry_base = 0.2\nretry_longest = 1\n',
    )
    _node_config(
        fed.nodes[CLIENT],
        'audit = "receiver/audit.sqlite"\n',
        '\n[notifications]\ninbox = "receiver/inbox.sqlite"\noutbox = "receiver/outbox.sqlite"\n',
    )
    return Pilot(tmp_path, fed, tmp_path / "homes.csv")


@contextlib.contextmanager
def running(pilot: Pilot, *parties: str) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    with contextlib.ExitStack() as stack:
        procs = {"registry": stack.enter_context(pilot.fed.registry_process())}
        for party in parties:
            procs[party] = stack.enter_context(pilot.fed.node_process(party))
        yield procs


def policy_version(pilot: Pilot) -> Callable[[], str]:
    """The version of the sender's policy in force, from its own health report."""
    done = pilot.dsgo("token", "--as", str(pilot.sender), "--to", pilot.fed.urls[NODE])
    assert done.returncode == 0, done.stderr
    headers = {"authorization": f"Bearer {done.stdout.strip()}"}

    def version() -> str:
        answer = httpx.get(pilot.fed.urls[NODE] + "/health", headers=headers, timeout=5)
        return str(answer.json()["policy"]["version"])

    return version


def changed(pilot: Pilot, edit: Callable[[], None], notifications: int) -> None:
    """Make ``edit`` and wait until the sender's outbox holds ``notifications``."""
    edit()
    wait_for(lambda: len(pilot.outbox()) >= notifications, f"{notifications} notifications in the outbox")


def test_a_label_change_arrives_once_signed_and_with_only_permitted_fields(pilot: Pilot) -> None:
    with running(pilot, NODE, CLIENT):
        options = (
            "--class",
            "bot:Building",
            "--where",
            "dsgo:municipalityCode=0363",
            "--watch",
            "dsgo:energyLabel",
        )
        assert pilot.subscribe(*options)["status"] == "active"
        pilot.edit("1001", 5, "D")
        pilot.edit("1001", 12, "700,00")
        shown = pilot.dsgo("inbox", "--as", str(pilot.receiver), "--wait", "50")  # as people wait
        assert shown.returncode == 0, shown.stderr
        assert "[signature verified]" in shown.stdout and "dsgo:energyLabel=D" in shown.stdout
        [(position, note, via, dups)] = pilot.inbox()
        wait_for(lambda: pilot.outbox() == [(1, "delivered", 1)], "the sender recorded the delivery")
        event = note["event"][0]
        assert (position, via, dups, event["event_type"]) == (1, "webhook", 0, "updated")
        assert event["event_data"]["object"]["values"] == {LABEL: ["D"]}
        text = orjson.dumps(note).decode()
        assert "monthlyRent" not in text and "700" not in text


def test_a_change_only_in_withheld_fields_sends_nothing(pilot: Pilot) -> None:
    with running(pilot, NODE, CLIENT):
        pilot.subscribe("--class", "bot:Building")
        pilot.edit("1002", 12, "650,00")  # the rent: withheld
        pilot.edit("1007", 5, "A")  # a home outside 0363: not in the view
        changed(pilot, lambda: pilot.edit("1002", 5, "B"), 1)  # the label: visible, read last
        [(position, note, _, _)] = wait_for(pilot.inbox, "the visible change arrived")
        assert position == 1
        assert note["event"][0]["event_data"]["object"]["values"] == {LABEL: ["B"]}
        assert len(pilot.outbox()) == 1


def test_a_policy_revoked_between_subscribing_and_the_change_sends_nothing(pilot: Pilot) -> None:
    with running(pilot, NODE, CLIENT):
        pilot.subscribe("--class", "bot:Building", "--watch", "dsgo:energyLabel")
        pilot.subscribe("--class", "bot:Building", "--watch", "dsgo:energyLabel", by=NODE)  # the marker
        version = policy_version(pilot)
        before = version()
        policy = pilot.folder / "sender-policies" / "corporation.yaml"
        policy.write_text("rules:\n" + POLICY[POLICY.index("  - id: own-data") :])  # the permit is gone
        wait_for(lambda: version() != before, "the sender read its new policy")
        pilot.edit("1003", 5, "A")
        wait_for(lambda: pilot.inbox("sender"), "the owner's own notification of the change arrived")
        assert pilot.outbox() == []
        assert pilot.inbox() == []


def test_a_receiver_that_was_down_gets_everything_once_in_order(pilot: Pilot) -> None:
    with running(pilot, NODE) as procs:
        pilot.subscribe("--class", "bot:Building", "--watch", "dsgo:energyLabel")  # the receiver is down
        for n, label in enumerate(("E", "D", "C"), start=1):
            changed(pilot, lambda label=label: pilot.edit("1004", 5, label), n)
        wait_for(lambda: pilot.outbox()[0][2] >= 2, "the sender tried the first twice, and failed")
        assert [p for p, _, _ in pilot.outbox()] == [1, 2, 3]
        with pilot.fed.node_process(CLIENT):
            received = wait_for(lambda: len(pilot.inbox()) == 3 and pilot.inbox(), "all three arrived")
            values = [n["event"][0]["event_data"]["object"]["values"][LABEL] for _, n, _, _ in received]
            assert [p for p, *_ in received] == [1, 2, 3]
            assert values == [["E"], ["D"], ["C"]]
            assert all(dups == 0 for *_, dups in received)
            caught = pilot.dsgo("inbox", "--as", str(pilot.receiver), "--catch-up")
            assert caught.returncode == 0, caught.stderr
            assert caught.stdout.count("[signature verified]") == 3
        assert procs[NODE].poll() is None


def test_a_sender_killed_with_a_full_outbox_loses_nothing_and_doubles_nothing(pilot: Pilot) -> None:
    with running(pilot) as procs:
        with pilot.fed.node_process(NODE) as sender:
            pilot.subscribe("--class", "bot:Building", "--watch", "dsgo:energyLabel")  # the receiver is down
            for n, label in enumerate(("B", "A", "G"), start=1):
                changed(pilot, lambda label=label: pilot.edit("1005", 5, label), n)
            assert [p for p, state, _ in pilot.outbox() if state == "pending"] == [1, 2, 3]
            sender.kill()
            sender.wait()
        with pilot.fed.node_process(NODE):
            caught = pilot.dsgo("inbox", "--as", str(pilot.receiver), "--catch-up", "--json")
            assert caught.returncode == 0, caught.stderr
            assert [n["position"] for n in orjson.loads(caught.stdout)] == [1, 2, 3]
            with pilot.fed.node_process(CLIENT):
                wait_for(
                    lambda: all(s == "delivered" for _, s, _ in pilot.outbox()),
                    "the restarted sender sent all",
                )
            assert [p for p, _, _ in pilot.outbox()] == [1, 2, 3]
            received = pilot.inbox()
            assert [p for p, *_ in received] == [1, 2, 3]
            assert [via for _, _, via, _ in received] == ["feed"] * 3
            assert [dups for *_, dups in received] == [1, 1, 1]  # the pushes, dropped as duplicates
        assert procs["registry"].poll() is None
