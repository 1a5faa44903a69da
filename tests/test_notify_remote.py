"""Change notifications from a node whose data is a remote SPARQL store (a real Virtuoso):
another writer changes the store with SPARQL Update, the node's watch finds the change
and the same pipeline as for a file sends it. Real processes on loopback (a registry, the
corporation's node on Virtuoso, the municipality's node); waits poll the nodes' own state
with a bound, never sleep."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from gateway.http.capabilities import NOT_OFFERED_REMOTE
from tests.servers import CLIENT, NODE, Relay, Virtuoso, federation, relayed, virtuoso_server
from tests.test_notify_processes import LABEL, POLICY, Pilot, _node_config, running, wait_for

pytestmark = pytest.mark.integration

NS = "https://data.test.example/"
DSGO = "https://vocab.dsgo.example/def#"
RENT = "https://w3id.org/props#monthlyRent"
HOMES = "".join(
    f"""<{NS}id/home/{home}> a <https://w3id.org/bot#Building> ;
    <http://www.w3.org/2000/01/rdf-schema#label> "Zaaiersweg {home}" ;
    <{DSGO}municipalityCode> "{code}" ; <{DSGO}energyLabel> "{label}" ; <{RENT}> {rent} .
"""
    for home, code, label, rent in (
        (1001, "0363", "F", "612.40"),
        (1002, "0363", "E", "598.10"),
        (1007, "0599", "C", "701.00"),
    )
)


@pytest.fixture(scope="module")
def virtuoso() -> Iterator[Virtuoso]:
    with virtuoso_server() as server:
        yield server


@pytest.fixture
def relay(virtuoso: Virtuoso) -> Iterator[Relay]:
    """The store behind a relay that can be cut and restored (``tests.servers.Relay``)."""
    with relayed(virtuoso.endpoint) as relay:
        yield relay


class Store:
    """The corporation's graph in Virtuoso, as its other writer (not the node) changes it."""

    def __init__(self, virtuoso: Virtuoso) -> None:
        self.virtuoso, self.graph = virtuoso, f"urn:dsgo:test:{uuid.uuid4().hex}"
        virtuoso.update(f"INSERT DATA {{ GRAPH <{self.graph}> {{ {HOMES} }} }}")

    def set(self, home: int, predicate: str, value: str) -> None:
        s = f"<{NS}id/home/{home}>"
        self.virtuoso.update(
            f"WITH <{self.graph}> DELETE {{ {s} <{predicate}> ?old }} INSERT {{ {s} <{predicate}> {value} }} "
            f"WHERE {{ OPTIONAL {{ {s} <{predicate}> ?old }} }}"
        )


@pytest.fixture
def store(virtuoso: Virtuoso) -> Store:
    return Store(virtuoso)


def pilot_on(tmp_path: Path, endpoint: str, graph: str, watch: float = 0.2) -> Pilot:
    """The corporation's node reading ``graph`` at ``endpoint`` live, checked for changes
    every ``watch`` seconds (short, so a test waits little), and the municipality's node."""
    fed = federation(tmp_path, {NODE: None, CLIENT: None}, clients=())
    for name in ("sender", "receiver"):
        (tmp_path / name).mkdir()
    (tmp_path / "sender-policies").mkdir()
    (tmp_path / "sender-policies" / "corporation.yaml").write_text(POLICY)
    sender = fed.nodes[NODE]
    text = sender.read_text().replace('dir = "policies"', 'dir = "sender-policies"')
    text = text.replace(
        'name = "buildings"\ntype = "rdf"\npath = "buildings.ttl"',
        f'name = "warehouse"\ntype = "sparql"\nendpoint = "{endpoint}"\ngraph = "{graph}"\n'
        f"watch = {watch}\ncache_ttl = 0",
    )
    sender.write_text(text)
    _node_config(
        sender,
        'poll_interval = 0.1\naudit = "sender/audit.sqlite"\n',
        '\n[notifications]\noutbox = "sender/outbox.sqlite"\ninbox = "sender/inbox.sqlite"\nretry_base = 0.2\nretry_longest = 1\n',
    )
    _node_config(
        fed.nodes[CLIENT],
        'audit = "receiver/audit.sqlite"\n',
        '\n[notifications]\ninbox = "receiver/inbox.sqlite"\noutbox = "receiver/outbox.sqlite"\n',
    )
    return Pilot(tmp_path, fed, tmp_path / "unused.csv")


@pytest.fixture
def pilot(tmp_path: Path, virtuoso: Virtuoso, store: Store) -> Pilot:
    return pilot_on(tmp_path, virtuoso.endpoint, store.graph)


def test_a_change_written_into_the_store_arrives_once_signed_with_only_permitted_fields(
    pilot: Pilot, store: Store
) -> None:
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
        store.set(1001, DSGO + "energyLabel", '"D"')
        store.set(1001, RENT, "1234.5")
        shown = pilot.dsgo("inbox", "--as", str(pilot.receiver), "--wait", "50")
        assert shown.returncode == 0, shown.stderr
        assert "[signature verified]" in shown.stdout and "dsgo:energyLabel=D" in shown.stdout
        wait_for(lambda: pilot.outbox() == [(1, "delivered", 1)], "the sender recorded the delivery")
        [(position, note, via, dups)] = pilot.inbox()
        event = note["event"][0]
        assert (position, via, dups, event["event_type"]) == (1, "webhook", 0, "updated")
        assert event["event_data"]["object"]["values"] == {LABEL: ["D"]}
        text = orjson.dumps(note).decode()
        assert "monthlyRent" not in text and "1234.5" not in text  # no hex id holds a "."


def test_a_change_only_in_withheld_fields_of_the_store_sends_nothing(pilot: Pilot, store: Store) -> None:
    with running(pilot, NODE, CLIENT):
        pilot.subscribe("--class", "bot:Building")
        store.set(1002, RENT, "650.00")  # the rent: withheld
        store.set(1007, DSGO + "energyLabel", '"A"')  # a home outside 0363: not in the view
        store.set(1002, DSGO + "energyLabel", '"B"')  # the label: visible, written last
        [(position, note, _, _)] = wait_for(pilot.inbox, "the visible change arrived")
        assert position == 1
        assert note["event"][0]["event_data"]["object"]["values"] == {LABEL: ["B"]}
        assert len(pilot.outbox()) == 1


def store_state(pilot: Pilot) -> Callable[[], str]:
    """The state of the sender's store in its own health report (as its owner reads it)."""
    done = pilot.dsgo("token", "--as", str(pilot.sender), "--to", pilot.fed.urls[NODE])
    assert done.returncode == 0, done.stderr
    headers = {"authorization": f"Bearer {done.stdout.strip()}"}

    def state() -> str:
        answer = httpx.get(pilot.fed.urls[NODE] + "/health", headers=headers, timeout=5).json()
        return str(answer["sources"]["warehouse"]["state"])

    return state


def test_a_change_made_while_the_store_was_unreachable_arrives_once_when_it_is_back(
    tmp_path: Path, store: Store, relay: Relay
) -> None:
    pilot = pilot_on(tmp_path, f"http://127.0.0.1:{relay.port}/sparql", store.graph)
    with running(pilot, NODE, CLIENT):
        pilot.subscribe("--class", "bot:Building", "--watch", "dsgo:energyLabel")
        relay.down()

        state = store_state(pilot)

        wait_for(lambda: state() == "failed", "the sender's health says the store is failing")
        store.set(1002, DSGO + "energyLabel", '"A"')
        relay.up()
        [(position, _, _, dups)] = wait_for(pilot.inbox, "the change made meanwhile arrived")
        wait_for(lambda: state() != "failed", "the sender's health says the store answers again")
        store.set(1001, DSGO + "energyLabel", '"B"')  # a later change: the earlier one is not sent again
        wait_for(lambda: len(pilot.inbox()) == 2, "the later change arrived")
        values = [n["event"][0]["event_data"]["object"]["values"][LABEL] for _, n, _, _ in pilot.inbox()]
        assert (position, dups, values) == (1, 0, [["A"], ["B"]])
        assert [p for p, _, _ in pilot.outbox()] == [1, 2]


def token(pilot: Pilot, party: str) -> dict[str, str]:
    done = pilot.dsgo("token", "--as", str(pilot.fed.nodes[party]), "--to", pilot.fed.urls[NODE])
    assert done.returncode == 0, done.stderr
    return {"authorization": f"Bearer {done.stdout.strip()}"}


def test_the_owner_saying_the_store_changed_has_it_checked_at_once(
    tmp_path: Path, virtuoso: Virtuoso, store: Store
) -> None:
    pilot = pilot_on(tmp_path, virtuoso.endpoint, store.graph, watch=3600)  # no check but the first
    with running(pilot, NODE, CLIENT):
        pilot.subscribe("--class", "bot:Building", "--watch", "dsgo:energyLabel")
        store.set(1001, DSGO + "energyLabel", '"A"')
        url = pilot.fed.urls[NODE] + "/subscriptions/store-changed"
        told = httpx.post(url, headers=token(pilot, NODE), timeout=30)
        again = httpx.post(url, headers=token(pilot, NODE), timeout=30)
        [(_, note, _, _)] = wait_for(pilot.inbox, "the change arrived")
    assert (told.status_code, told.json()) == (200, {"changed": 1})
    assert (again.status_code, again.json()) == (200, {"changed": 0})
    assert note["event"][0]["event_data"]["object"]["values"] == {LABEL: ["A"]}


def test_only_the_nodes_own_party_may_say_its_store_changed(pilot: Pilot) -> None:
    with running(pilot, NODE):
        url = pilot.fed.urls[NODE] + "/subscriptions/store-changed"
        answer = httpx.post(url, headers=token(pilot, CLIENT), timeout=30)
        anonymous = httpx.post(url, timeout=30)
    assert (answer.status_code, answer.json()["code"]) == (403, "forbidden")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "invalid_token")


def subscriptions_feature(pilot: Pilot) -> dict[str, object]:
    """The sender's ``subscriptions`` entry in its capabilities, as its own party reads them."""
    answer = httpx.get(pilot.fed.urls[NODE] + "/capabilities", headers=token(pilot, NODE), timeout=5)
    assert answer.status_code == 200
    token_ = answer.json()["capabilities_token"]
    claims = orjson.loads(base64.urlsafe_b64decode(token_.split(".")[1] + "=="))
    features = claims["capabilities_info"]["supported_versions"][0]["supported_features"][0]
    [feature] = [f for f in features["restricted"] if f["feature"] == "subscriptions"]
    return dict(feature)


def test_capabilities_list_subscriptions_for_a_node_on_a_watched_store(pilot: Pilot) -> None:
    with running(pilot, NODE):
        feature = subscriptions_feature(pilot)
    assert "offered" not in feature
    assert feature["event_types"] == ["created", "updated", "deleted"]


def test_a_store_not_watched_offers_no_subscriptions_and_says_why(
    tmp_path: Path, virtuoso: Virtuoso, store: Store
) -> None:
    pilot = pilot_on(tmp_path, virtuoso.endpoint, store.graph, watch=0)
    with running(pilot, NODE):
        feature = subscriptions_feature(pilot)
        refused = httpx.post(pilot.fed.urls[NODE] + "/subscriptions", headers=token(pilot, CLIENT), json={})
    assert (feature["offered"], feature["reason"]) == (False, NOT_OFFERED_REMOTE)
    assert (refused.status_code, refused.json()["code"]) == (404, "not_found")
