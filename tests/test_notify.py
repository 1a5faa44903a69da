"""Change notifications in process: subscriptions, the policy at change and at send time,
signatures, the outbox's retries, the replay feed (real processes: test_notify_processes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.identity.detached import sign_body, split
from gateway.notify.receive import verify_notification
from tests.conftest import BUILDING_TTL, NS
from tests.kit import FIRM, MUNI, Federation, Pki, endpoint, federation

pytestmark = pytest.mark.anyio

B1 = NS + "id/building/1"
LABEL = "https://vocab.dsgo.example/def#energyLabel"
YEAR = "https://vocab.dsgo.example/def#buildingYear"
POLICY = """
rules:
  - id: labels
    effect: permit
    to: {parties: [EU.EORI.NL000000003]}
    resources: {classes: [bot:Building]}
    fields: [rdfs:label, dsgo:energyLabel]
    purpose: monitoring
"""
WATCH_LABELS = {"topic": {"classes": ["bot:Building"]}, "watched": ["dsgo:energyLabel"]}


@contextlib.asynccontextmanager
async def pair(tmp_path: Path, pki: Pki, policy: str = POLICY) -> AsyncIterator[Federation]:
    """FIRM's node publishing conftest's buildings, MUNI's node receiving."""
    async with federation(tmp_path, pki, nodes=(FIRM, MUNI), policies={FIRM: policy}) as fed:
        yield fed


async def subscribe(fed: Federation, body: dict[str, Any] | None = None) -> httpx.Response:
    client = await fed.client_as(MUNI, FIRM)
    return await client.post("/subscriptions", json=WATCH_LABELS if body is None else body)


async def change(fed: Federation, tmp_path: Path, old: str, new: str) -> None:
    """Edit FIRM's Turtle and let its node read it again (as its watcher would)."""
    ttl = tmp_path / "node-001" / "data" / "buildings.ttl"
    text = ttl.read_text() if ttl.exists() else BUILDING_TTL
    assert old in text
    ttl.write_text(text.replace(old, new))
    assert await asyncio.to_thread(fed.nodes[FIRM].state.dsgo.node.sources.refresh_all)


async def deliver(fed: Federation) -> int:
    notifier = fed.nodes[FIRM].state.dsgo.notifier
    delivered = 0
    while n := await notifier.deliver_due():
        delivered += n
    return delivered


def inbox(fed: Federation) -> list[dict[str, Any]]:
    return [r.notification for r in fed.nodes[MUNI].state.dsgo.inbox.received()]


async def test_a_changed_label_arrives_once_signed_with_only_permitted_fields(
    tmp_path: Path, pki: Pki
) -> None:
    async with pair(tmp_path, pki) as fed:
        assert (await subscribe(fed)).status_code == 201
        await change(fed, tmp_path, '"1971"', '"1972"')  # withheld field in the same change
        await change(fed, tmp_path, 'dsgo:energyLabel "C"', 'dsgo:energyLabel "B"')
        assert await deliver(fed) == 1
        [received] = fed.nodes[MUNI].state.dsgo.inbox.received()
        note = received.notification
        event = note["event"][0]
        assert (note["resource_type"], note["consumer_id"], note["provider_id"]) == (
            "notification",
            MUNI,
            FIRM,
        )
        assert (event["event_type"], note["position"]) == ("updated", 1)
        assert event["event_data"]["object"] == {"id": B1, "changed": [LABEL], "values": {LABEL: ["B"]}}
        assert YEAR not in received.body.decode()
        trust = fed.nodes[MUNI].state.dsgo.auth.trust
        data = await verify_notification(
            received.body, received.signature, me=MUNI, trust=trust, now=fed.clock()
        )
        assert data["id"] == note["id"]


async def test_a_change_only_in_withheld_fields_sends_nothing(tmp_path: Path, pki: Pki) -> None:
    async with pair(tmp_path, pki) as fed:
        assert (await subscribe(fed, {"topic": {"classes": ["bot:Building"]}})).status_code == 201
        await change(fed, tmp_path, '"1971"', '"1972"')
        await change(fed, tmp_path, "dsgo:rcRoof 2.5", "dsgo:rcRoof 3.5")
        assert await deliver(fed) == 0
        assert fed.nodes[FIRM].state.dsgo.notifier.health()["pending"] == 0
        assert inbox(fed) == []


LINKED_POLICY = """
rules:
  - id: labels-of-open-buildings
    effect: permit
    to: {parties: [EU.EORI.NL000000003]}
    resources:
      classes: [bot:Building]
      where: [{via: [bot:hasStorey], property: rdfs:label, equals: "open"}]
    fields: [rdfs:label, dsgo:energyLabel]
"""
B2_WITH_STOREY = (
    '<id/building/2> a bot:Building ; rdfs:label "Kerkstraat 2" ; dsgo:energyLabel "A" ;'
    " bot:hasStorey <id/building/2/storey/0> .\n"
    '<id/building/2/storey/0> a bot:Storey ; rdfs:label "open" .'
)


async def test_a_linked_change_that_opens_a_resource_to_the_subscriber_is_notified_for_it(
    tmp_path: Path, pki: Pki
) -> None:
    """Building 1's own description does not change, but its storey's label, which the
    policy's condition reads, does: building 1 enters the subscriber's view. Were it not
    notified, a subscriber would hear of it only when a withheld field of building 1
    changed at the same time: what it hears would depend on what it may not see."""
    async with pair(tmp_path, pki, LINKED_POLICY) as fed:
        await change(
            fed, tmp_path, '<id/building/2> a bot:Building ; rdfs:label "Kerkstraat 2" .', B2_WITH_STOREY
        )
        assert (await subscribe(fed)).status_code == 201
        await change(fed, tmp_path, "<id/building/1/storey/0> a bot:Storey .", STOREY_OPEN)
        assert await deliver(fed) == 1
        [note] = inbox(fed)
        assert note["event"][0]["event_type"] == "created"
        assert note["event"][0]["event_data"]["object"] == {
            "id": B1,
            "changed": [LABEL],
            "values": {LABEL: ["C"]},
        }


STOREY_OPEN = '<id/building/1/storey/0> a bot:Storey ; rdfs:label "open" .'


async def test_a_policy_revoked_after_subscribing_sends_nothing(tmp_path: Path, pki: Pki) -> None:
    async with pair(tmp_path, pki) as fed:
        assert (await subscribe(fed)).status_code == 201
        policy = tmp_path / "node-001" / "policies" / "policy.yaml"
        policy.write_text("rules: []\n")
        assert fed.nodes[FIRM].state.dsgo.node.access.refresh()
        await change(fed, tmp_path, 'dsgo:energyLabel "C"', 'dsgo:energyLabel "B"')
        assert await deliver(fed) == 0
        assert inbox(fed) == []


async def test_a_policy_revoked_before_sending_withdraws_the_notification(tmp_path: Path, pki: Pki) -> None:
    async with pair(tmp_path, pki) as fed:
        sub = (await subscribe(fed)).json()
        await change(fed, tmp_path, 'dsgo:energyLabel "C"', 'dsgo:energyLabel "B"')
        (tmp_path / "node-001" / "policies" / "policy.yaml").write_text("rules: []\n")
        assert fed.nodes[FIRM].state.dsgo.node.access.refresh()
        assert await deliver(fed) == 0
        assert inbox(fed) == []
        client = await fed.client_as(MUNI, FIRM)
        feed = (await client.get(f"/subscriptions/{sub['id']}/events")).json()
        assert feed["items"] == [{"position": 1, "withdrawn": True}]


async def test_the_same_change_read_twice_makes_one_notification(tmp_path: Path, pki: Pki) -> None:
    async with pair(tmp_path, pki) as fed:
        assert (await subscribe(fed)).status_code == 201
        notifier = fed.nodes[FIRM].state.dsgo.notifier
        store = fed.nodes[FIRM].state.dsgo.node.store
        before = store.source_triples("buildings")
        import pyoxigraph as ox

        after = [
            ox.Triple(t.subject, t.predicate, ox.Literal("A")) if t.predicate.value == LABEL else t
            for t in before
        ]
        assert await asyncio.to_thread(notifier.changed, "buildings", before, after, ("v1", "v2")) == 1
        assert await asyncio.to_thread(notifier.changed, "buildings", before, after, ("v1", "v2")) == 0
        assert await deliver(fed) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"watch": ["dsgo:energyLabel"]}',
        b'{"event_type": ["changed"]}',
        b'{"event_type": []}',
        b'{"topic": {"classes": ["bot:Nothing"]}}',
        b'{"topic": {"classes": ["nope:Building"]}}',
        b'{"topic": {"colour": "red"}}',
        b'{"topic": {"where": [{"property": "dsgo:energyLabel", "resembles": "A"}]}}',
        b'{"topic": {"where": [{"via": ["^bot:hasStorey"], "property": "dsgo:energyLabel", "equals": "A"}]}}',
        b'{"watched": "dsgo:energyLabel"}',
        b'{"watched": ["dsgo:noSuchField"]}',
        b'{"start_date": "soon"}',
        b'{"start_date": 2000000000, "end_date": 1900000000}',
        b'{"consumer_id": "EU.EORI.NL000000001"}',
        b'{"resource_type": "notification"}',
        b'{"webhook_url": 42}',
    ],
)
async def test_a_bad_subscription_body_is_refused_with_invalid_subscription(
    tmp_path: Path, pki: Pki, body: bytes
) -> None:
    async with pair(tmp_path, pki) as fed:
        client = await fed.client_as(MUNI, FIRM)
        answer = await client.post("/subscriptions", content=body)
        assert (answer.status_code, answer.json()["code"]) == (400, "invalid_subscription"), answer.text


@pytest.mark.parametrize(
    "url",
    [
        "http://attacker.test/notifications",
        endpoint(FIRM) + "/notifications",
        endpoint(MUNI) + ".attacker.test/notifications",
        endpoint(MUNI) + "@attacker.test/notifications",
        endpoint(MUNI) + "/../x",
        endpoint(MUNI) + "/notifications?to=elsewhere",
    ],
)
async def test_a_webhook_outside_the_subscribers_registered_endpoint_is_refused(
    tmp_path: Path, pki: Pki, url: str
) -> None:
    async with pair(tmp_path, pki) as fed:
        answer = await subscribe(fed, {**WATCH_LABELS, "webhook_url": url})
        assert (answer.status_code, answer.json()["code"]) == (400, "webhook_outside_endpoint")


async def test_a_webhook_under_the_subscribers_endpoint_is_accepted(tmp_path: Path, pki: Pki) -> None:
    async with pair(tmp_path, pki) as fed:
        answer = await subscribe(fed, {**WATCH_LABELS, "webhook_url": endpoint(MUNI) + "/notifications"})
        assert answer.status_code == 201
        assert answer.json()["webhook_url"] == endpoint(MUNI) + "/notifications"


async def test_a_subscription_ending_in_the_past_is_refused_as_expired(tmp_path: Path, pki: Pki) -> None:
    async with pair(tmp_path, pki) as fed:
        answer = await subscribe(fed, {**WATCH_LABELS, "end_date": int(fed.clock()) - 60})
        assert (answer.status_code, answer.json()["code"]) == (400, "subscription_expired")


async def test_an_expired_subscription_says_so_and_hears_of_nothing(tmp_path: Path, pki: Pki) -> None:
    async with pair(tmp_path, pki) as fed:
        sub = (await subscribe(fed, {**WATCH_LABELS, "end_date": int(fed.clock()) + 60})).json()
        assert sub["status"] == "active"
        fed.clock.now += 120
        await change(fed, tmp_path, 'dsgo:energyLabel "C"', 'dsgo:energyLabel "B"')
        assert await deliver(fed) == 0
        client = await fed.client_as(MUNI, FIRM)
        now = (await client.get(f"/subscriptions/{sub['id']}")).json()
        assert now["status"] == "inactive"
        assert "expired" in now["status_reason"]


async def test_a_field_the_subscriber_may_not_read_is_refused(tmp_path: Path, pki: Pki) -> None:
    async with pair(tmp_path, pki) as fed:
        answer = await subscribe(
            fed, {"topic": {"classes": ["bot:Building"]}, "watched": ["dsgo:buildingYear"]}
        )
        assert (answer.status_code, answer.json()["code"]) == (403, "subscription_refused")
        assert "dsgo:buildingYear" in answer.json()["detail"]


async def test_a_topic_without_a_readable_resource_is_refused(tmp_path: Path, pki: Pki) -> None:
    async with pair(tmp_path, pki) as fed:
        answer = await subscribe(fed, {"topic": {"iris": [NS + "id/building/99"]}})
        assert (answer.status_code, answer.json()["code"]) == (403, "subscription_refused")


async def test_subscriptions_need_a_token(tmp_path: Path, pki: Pki) -> None:
    async with pair(tmp_path, pki) as fed:
        answer = await fed.client(FIRM).post("/subscriptions", json=WATCH_LABELS)
        assert (answer.status_code, answer.json()["code"]) == (401, "invalid_token")


async def test_a_subscriber_sees_and_deletes_only_its_own_subscriptions(tmp_path: Path, pki: Pki) -> None:
    async with pair(tmp_path, pki) as fed:
        sub = (await subscribe(fed)).json()
        other = await fed.client_as(FIRM, FIRM)
        assert (await other.get("/subscriptions")).json() == {"subscriptions": []}
        answer = await other.delete(f"/subscriptions/{sub['id']}")
        assert (answer.status_code, answer.json()["code"]) == (404, "not_found")
        mine = await fed.client_as(MUNI, FIRM)
        assert [s["id"] for s in (await mine.get("/subscriptions")).json()["subscriptions"]] == [sub["id"]]
        assert (await mine.delete(f"/subscriptions/{sub['id']}")).status_code == 204
        assert (await mine.get(f"/subscriptions/{sub['id']}")).status_code == 404


async def test_failed_deliveries_back_off_exponentially_then_make_the_subscription_inactive(
    tmp_path: Path, pki: Pki
) -> None:
    async with pair(tmp_path, pki) as fed:
        sub = (await subscribe(fed)).json()
        receiver = fed.router.apps.pop("p003.test")  # the subscriber's node is down
        await change(fed, tmp_path, 'dsgo:energyLabel "C"', 'dsgo:energyLabel "B"')
        outbox = fed.nodes[FIRM].state.dsgo.notifier.outbox
        start = fed.clock()
        waits = []
        for _ in range(4):
            assert await deliver(fed) == 0
            [due] = outbox.due(float("inf"))
            waits.append(round(outbox.next_due() - fed.clock.now))  # type: ignore[operator]
            fed.clock.now = outbox.next_due()  # type: ignore[assignment]
        assert waits == [2, 4, 8, 16]
        assert due.attempts == 4
        fed.clock.now = start + 3 * 86400 + 1
        assert await deliver(fed) == 0
        fed.router.apps["p003.test"] = receiver
        client = await fed.client_as(MUNI, FIRM)
        now = (await client.get(f"/subscriptions/{sub['id']}")).json()
        assert now["status"] == "inactive"
        assert "deliveries failed since" in now["status_reason"]
        assert await deliver(fed) == 0  # an inactive subscription is not sent to
        feed = (await client.get(f"/subscriptions/{sub['id']}/events?since=0")).json()
        assert [i["position"] for i in feed["items"]] == [1]


async def test_the_replay_feed_gives_every_notification_in_order_after_a_cursor(
    tmp_path: Path, pki: Pki
) -> None:
    async with pair(tmp_path, pki) as fed:
        sub = (await subscribe(fed)).json()
        fed.router.apps.pop("p003.test")
        for old, new in (("C", "B"), ("B", "A"), ("A", "D")):
            await change(fed, tmp_path, f'dsgo:energyLabel "{old}"', f'dsgo:energyLabel "{new}"')
        client = await fed.client_as(MUNI, FIRM)
        feed = (await client.get(f"/subscriptions/{sub['id']}/events?since=1")).json()
        assert [i["position"] for i in feed["items"]] == [2, 3]
        assert (feed["next"], feed["more"]) == (3, False)
        trust = fed.nodes[MUNI].state.dsgo.auth.trust
        labels = []
        for item in feed["items"]:
            signature, body = split(item["jws"], ValueError)
            note = await verify_notification(body, signature, me=MUNI, trust=trust, now=fed.clock())
            labels.append(note["event"][0]["event_data"]["object"]["values"][LABEL])
        assert labels == [["A"], ["D"]]


async def test_a_feed_cursor_that_is_not_a_position_is_a_bad_request(tmp_path: Path, pki: Pki) -> None:
    async with pair(tmp_path, pki) as fed:
        sub = (await subscribe(fed)).json()
        client = await fed.client_as(MUNI, FIRM)
        answer = await client.get(f"/subscriptions/{sub['id']}/events?since=-1")
        assert (answer.status_code, answer.json()["code"]) == (400, "bad_request")


async def test_a_delivery_is_in_the_audit_log_with_the_fields_it_released(tmp_path: Path, pki: Pki) -> None:
    async with pair(tmp_path, pki) as fed:
        assert (await subscribe(fed)).status_code == 201
        await change(fed, tmp_path, 'dsgo:energyLabel "C"', 'dsgo:energyLabel "B"')
        assert await deliver(fed) == 1
        assert fed.nodes[FIRM].state.dsgo.audit.flush()
        rows = _audit_rows(tmp_path / "node-001")
        [row] = [r for r in rows if r[3].startswith("notification ")]
        assert (row[2], orjson.loads(row[4]), orjson.loads(row[5])) == (MUNI, [B1], [LABEL])


def _audit_rows(folder: Path) -> list[tuple[Any, ...]]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(folder / "state" / "audit.sqlite")) as db:
        return db.execute("SELECT seq, request_id, caller, path, resources, released FROM entries").fetchall()


async def _post_notification(fed: Federation, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-jws-signature"] = signature
    return await fed.client(MUNI).post("/notifications", content=body, headers=headers)


def _note(**changes: Any) -> bytes:
    note = {"id": "n1", "resource_type": "notification", "provider_id": FIRM, "consumer_id": MUNI}
    note |= {"subscription_id": "s1", "position": 1, "event": []}
    return orjson.dumps({**note, **changes})


async def test_the_webhook_keeps_a_signed_notification_once(tmp_path: Path, pki: Pki) -> None:
    async with pair(tmp_path, pki) as fed:
        body = _note()
        signature = sign_body(body, pki.ids[FIRM])
        first = await _post_notification(fed, body, signature)
        again = await _post_notification(fed, body, signature)
        assert (first.status_code, first.json()["duplicate"]) == (200, False)
        assert (again.status_code, again.json()["duplicate"]) == (200, True)
        assert len(inbox(fed)) == 1


@pytest.mark.parametrize("case", ["unsigned", "tampered", "wrong signer", "not for us", "not the provider"])
async def test_the_webhook_refuses_what_does_not_verify(tmp_path: Path, pki: Pki, case: str) -> None:
    async with pair(tmp_path, pki) as fed:
        body, signer = _note(), FIRM
        if case == "not for us":
            body = _note(consumer_id=FIRM)
        if case == "not the provider":
            signer = MUNI
        signature = sign_body(body, pki.ids[signer]) if case != "unsigned" else None
        if case == "tampered":
            body = body.replace(b'"position":1', b'"position":2')
        if case == "wrong signer":
            signature = sign_body(body, pki.ids["EU.EORI.NL000000004"])  # not active in the registry
        answer = await _post_notification(fed, body, signature)
        assert (answer.status_code, answer.json()["code"]) == (401, "invalid_signature")
        assert inbox(fed) == []


async def test_capabilities_list_subscriptions_and_their_event_types(tmp_path: Path, pki: Pki) -> None:
    async with pair(tmp_path, pki) as fed:
        client = await fed.client_as(MUNI, FIRM)
        token = (await client.get("/capabilities")).json()["capabilities_token"]
        from gateway.identity.jwt import decode_part

        info = decode_part(token.split(".")[1], "payload", ValueError)["capabilities_info"]
        features = info["supported_versions"][0]["supported_features"][0]
        [subs] = [f for f in features["restricted"] if f["feature"] == "subscriptions"]
        assert subs["event_types"] == ["created", "updated", "deleted"]
        assert any(f["feature"] == "notifications" for f in features["public"])
