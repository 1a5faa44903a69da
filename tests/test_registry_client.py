"""The registry client's own behaviour, in process with an injected clock: which answers
it serves from its cache (fresh, stale while renewed in the background, expired), how one
request is shared, how it pages, retries a refused token and fails closed, and what
``state()`` tells ``/health``. The registry's answers are really signed, with the test
registry's own key and certificate chain."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gateway.errors import RegistryUnavailable
from gateway.identity import jwt
from gateway.identity.client import TokenClient
from gateway.identity.pki import b64_der, fingerprint
from gateway.identity.registry_client import RegistryClient
from tests.forge import dev_root
from tests.kit import CORP, FIRM, MUNI, REGISTRY, Clock, Pki

pytestmark = pytest.mark.anyio

URL = "http://registry.test"
Answer = Callable[[httpx.Request], "httpx.Response | dict[str, Any]"]


def _entry(party: str) -> dict[str, Any]:
    return {
        "party_id": party,
        "party_name": f"Party {party[-3:]}",
        "adherence": {"status": "Active", "start_date": "2020-01-01", "end_date": "2099-01-01"},
        "certificates": [],
    }


class Registry:
    """The registry's side of the wire: each path answers a claims dict (signed here, RS256
    with the registry's certificate chain in ``x5c``, for CORP, lasting 30 s from the
    clock's now) or a raw response. ``gate``, while unset, holds every data request;
    ``down`` makes every request fail to connect."""

    def __init__(self, pki: Pki, clock: Clock) -> None:
        self.identity = pki.ids[REGISTRY]
        self.clock = clock
        self.answers: dict[str, Answer] = {}
        self.requests: list[httpx.Request] = []
        self.tokens_issued = 0
        self.refuse_tokens: set[str] = set()
        self.gate: asyncio.Event | None = None
        self.down = False

    def sign(self, claims: dict[str, Any]) -> str:
        iat = int(self.clock())
        full = {"iss": REGISTRY, "sub": REGISTRY, "aud": CORP, "jti": uuid.uuid4().hex, "iat": iat}
        full.update(exp=iat + 30, **claims)
        return jwt.sign(full, self.identity.key, [b64_der(c) for c in self.identity.chain])

    def serve(self, path: str, claim: str, body: Callable[[httpx.Request], dict[str, Any]]) -> None:
        self.answers[path] = lambda request: {claim: self.sign(body(request))}

    def party(self, party: str, entry: dict[str, Any] | None = None) -> None:
        self.serve(f"/parties/{party}", "party_token", lambda _: {"party_info": entry or _entry(party)})

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("down", request=request)
        if request.url.path == "/connect/token":
            self.tokens_issued += 1
            token = f"t{self.tokens_issued}"
            return httpx.Response(
                200, json={"access_token": token, "token_type": "Bearer", "expires_in": 3600}
            )
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if request.headers.get("authorization", "").removeprefix("Bearer ") in self.refuse_tokens:
            return httpx.Response(401)
        answer = self.answers.get(request.url.path)
        if answer is None:
            return httpx.Response(404)
        result = answer(request)
        return result if isinstance(result, httpx.Response) else httpx.Response(200, json=result)

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = float(int(clock.now))  # whole seconds: ages at the edges are exact
    return clock


@pytest.fixture
def registry(pki: Pki, clock: Clock) -> Registry:
    return Registry(pki, clock)


def client(pki: Pki, registry: Registry, clock: Clock, url: str = URL, **options: Any) -> RegistryClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(registry.handle))
    anchors = options.pop("anchors", [fingerprint(dev_root(pki).cert)])
    return RegistryClient(
        url, REGISTRY, anchors, TokenClient(pki.ids[CORP], http, clock), clock=clock, **options
    )


async def settle(registry_client: RegistryClient) -> None:
    """Wait for the background renewals under way (their failures show in ``state()``)."""
    await asyncio.gather(*list(registry_client._inflight.values()), return_exceptions=True)


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until ``condition`` holds (a bounded number of turns)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def unavailable(call: Any) -> RegistryUnavailable:
    with pytest.raises(RegistryUnavailable) as refused:
        await call
    assert refused.value.code == "temporarily_unavailable" and refused.value.status == 503
    return refused.value


# -- the cache -----------------------------------------------------------------------------


async def test_an_answer_younger_than_refresh_is_served_without_asking_again(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.party(FIRM)
    c = client(pki, registry, clock)
    await c.party(FIRM)
    clock.now += 59.9
    party = await c.party(FIRM)
    await settle(c)
    assert party is not None and party.party_id == FIRM
    assert registry.paths() == [f"/parties/{FIRM}"]


async def test_an_answer_refresh_seconds_old_is_served_and_renewed_in_the_background(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.party(FIRM)
    c = client(pki, registry, clock)
    await c.party(FIRM)
    clock.now += 60
    registry.gate = asyncio.Event()  # the renewal cannot finish: the answer is served stale
    party = await c.party(FIRM)
    assert party is not None and party.party_id == FIRM
    registry.gate.set()
    await settle(c)
    assert registry.paths() == [f"/parties/{FIRM}"] * 2


async def test_a_stale_answer_is_served_while_the_registry_is_down(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.party(FIRM)
    c = client(pki, registry, clock)
    await c.party(FIRM)
    clock.now += 599.9
    registry.down = True
    party = await c.party(FIRM)
    await settle(c)
    assert party is not None and party.party_id == FIRM


async def test_an_answer_lifetime_seconds_old_is_not_served_when_the_registry_is_down(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.party(FIRM)
    c = client(pki, registry, clock)
    await c.party(FIRM)
    clock.now += 600
    registry.down = True
    await unavailable(c.party(FIRM))


async def test_an_expired_answer_is_waited_for_and_replaced(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.party(FIRM)
    c = client(pki, registry, clock)
    await c.party(FIRM)
    clock.now += 600
    registry.party(FIRM, {**_entry(FIRM), "party_name": "Renamed"})
    party = await c.party(FIRM)
    assert party is not None and party.name == "Renamed"
    clock.now += 59
    assert (await c.party(FIRM)) == party
    assert len(registry.requests) == 2


async def test_callers_asking_for_the_same_answer_at_once_share_one_request(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.party(FIRM)
    registry.gate = asyncio.Event()
    c = client(pki, registry, clock)
    first, second = asyncio.create_task(c.party(FIRM)), asyncio.create_task(c.party(FIRM))
    await until(lambda: bool(registry.requests))  # both callers are waiting by now
    registry.gate.set()
    one, other = await first, await second
    assert one is not None and one.party_id == FIRM and other == one
    assert len(registry.requests) == 1


async def test_a_caller_that_gives_up_does_not_cancel_the_request_others_wait_for(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.party(FIRM)
    registry.gate = asyncio.Event()
    c = client(pki, registry, clock)
    impatient, patient = asyncio.create_task(c.party(FIRM)), asyncio.create_task(c.party(FIRM))
    await until(lambda: bool(registry.requests))
    impatient.cancel()
    await asyncio.gather(impatient, return_exceptions=True)
    registry.gate.set()
    party = await patient
    assert party is not None and party.party_id == FIRM


async def test_different_answers_are_cached_apart(pki: Pki, registry: Registry, clock: Clock) -> None:
    registry.party(FIRM)
    registry.party(MUNI)
    c = client(pki, registry, clock)
    firm, muni = await c.party(FIRM), await c.party(MUNI)
    assert firm is not None and muni is not None and (firm.party_id, muni.party_id) == (FIRM, MUNI)


async def test_a_look_up_that_takes_longer_than_the_timeout_fails_closed(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.party(FIRM)
    registry.gate = asyncio.Event()  # never set: the registry accepts and never answers
    c = client(pki, registry, clock, timeout=0.01)
    await unavailable(c.party(FIRM))
    assert c.state()["error"] == "no answer within 0.01 s"


def test_a_look_up_may_take_two_seconds_by_default(pki: Pki, registry: Registry, clock: Clock) -> None:
    assert client(pki, registry, clock).timeout == 2.0


async def test_closing_cancels_the_requests_under_way_without_errors(
    pki: Pki, registry: Registry, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    registry.party(FIRM)
    registry.gate = asyncio.Event()
    c = client(pki, registry, clock)
    waiting = asyncio.create_task(c.party(FIRM))
    await until(lambda: bool(registry.requests))
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        await c.aclose()
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert c._inflight == {} and caplog.records == []


# -- state() and check() -------------------------------------------------------------------


async def test_the_state_is_ok_while_the_registry_answers(pki: Pki, registry: Registry, clock: Clock) -> None:
    registry.party(FIRM)
    c = client(pki, registry, clock, url=URL + "/")
    await c.party(FIRM)
    assert c.state() == {"status": "ok", "url": URL}


async def test_the_state_is_degraded_while_cached_answers_still_serve(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.party(FIRM)
    c = client(pki, registry, clock)
    await c.party(FIRM)
    clock.now += 599
    registry.down = True
    await unavailable(c.party(MUNI))
    since = dt.datetime.fromtimestamp(clock.now, dt.UTC).isoformat().replace("+00:00", "Z")
    assert c.state() == {
        "status": "degraded",
        "url": URL,
        "error": f"the registry at {URL} cannot be reached (ConnectError)",
        "since": since,
        "serving_cached": True,
    }


async def test_the_state_is_failing_once_no_cached_answer_serves(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.party(FIRM)
    c = client(pki, registry, clock)
    await c.party(FIRM)
    clock.now += 600
    registry.down = True
    await unavailable(c.party(FIRM))
    state = c.state()
    assert (state["status"], state["serving_cached"]) == ("failing", False)


async def test_the_state_is_ok_again_once_the_registry_answers(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.party(FIRM)
    c = client(pki, registry, clock)
    registry.down = True
    await unavailable(c.party(FIRM))
    registry.down = False
    await c.party(FIRM)
    assert c.state()["status"] == "ok"


async def test_the_registry_failing_and_recovering_is_logged_once_each(
    pki: Pki, registry: Registry, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    registry.party(FIRM)
    c = client(pki, registry, clock)
    registry.down = True
    with caplog.at_level(logging.WARNING, logger="dsgo.registry"):
        for _ in range(3):
            await unavailable(c.party(FIRM))
        registry.down = False
        await c.party(FIRM)
        await c.party(FIRM)
    assert [(r.name, r.levelno) for r in caplog.records] == [("dsgo.registry", logging.WARNING)] * 2


async def test_check_asks_nothing_of_a_registry_not_needed_yet(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    c = client(pki, registry, clock)
    c.check()
    await settle(c)
    assert registry.requests == []


def _trusted(pki: Pki) -> list[dict[str, str]]:
    return [
        {
            "subject": "CN=root",
            "certificate_fingerprint": fingerprint(dev_root(pki).cert),
            "status": "granted",
        }
    ]


async def test_check_renews_the_trusted_list_once_it_is_refresh_seconds_old(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.serve("/trusted_list", "trusted_list_token", lambda _: {"trusted_list": _trusted(pki)})
    c = client(pki, registry, clock)
    await c.trusted()
    start = clock.now
    clock.now = start + 59.9
    c.check()
    await settle(c)
    assert len(registry.requests) == 1
    clock.now = start + 60
    c.check()
    await settle(c)
    assert registry.paths() == ["/trusted_list"] * 2
    clock.now = start + 600
    registry.down = True  # the renewed answer is 540 s old: still served
    assert [ca.fingerprint for ca in await c.trusted()] == [fingerprint(dev_root(pki).cert)]


# -- what is asked, and what is believed ---------------------------------------------------


async def test_the_trusted_list_is_read_from_its_signed_answer(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.serve("/trusted_list", "trusted_list_token", lambda _: {"trusted_list": _trusted(pki)})
    [ca] = await client(pki, registry, clock).trusted()
    assert (ca.fingerprint, ca.usable) == (fingerprint(dev_root(pki).cert), True)


async def test_a_malformed_trusted_list_fails_closed(pki: Pki, registry: Registry, clock: Clock) -> None:
    registry.serve("/trusted_list", "trusted_list_token", lambda _: {"trusted_list": "all of them"})
    await unavailable(client(pki, registry, clock).trusted())


async def test_anchors_are_normalised(pki: Pki, registry: Registry, clock: Clock) -> None:
    registry.party(FIRM)
    hex_ = fingerprint(dev_root(pki).cert).lower()
    anchor = ":".join(hex_[i : i + 2] for i in range(0, 64, 2))
    assert (await client(pki, registry, clock, anchors=[anchor]).party(FIRM)) is not None


async def test_a_registry_answer_chained_to_no_anchor_fails_closed(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.party(FIRM)
    await unavailable(client(pki, registry, clock, anchors=["00" * 32]).party(FIRM))


async def test_a_client_with_pins_refuses_an_answer_from_a_certificate_it_does_not_pin(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.party(FIRM)
    other = fingerprint(pki.ids[FIRM].chain[0])  # a pin, but not of the certificate the registry signs with
    await unavailable(client(pki, registry, clock, pins=(other,)).party(FIRM))


async def test_a_party_id_is_asked_for_quoted_in_the_path(pki: Pki, registry: Registry, clock: Clock) -> None:
    odd = "did:ishare:EU.NL/1 2"
    registry.answers[f"/parties/{odd}"] = lambda _: {
        "party_token": registry.sign({"party_info": _entry(odd)})
    }
    party = await client(pki, registry, clock).party(odd)
    assert party is not None and party.party_id == odd
    assert registry.requests[0].url.raw_path == b"/parties/did:ishare:EU.NL%2F1%202"


async def test_each_request_carries_the_bearer_token_from_the_registry(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.party(FIRM)
    await client(pki, registry, clock).party(FIRM)
    assert registry.requests[0].headers["authorization"] == "Bearer t1"


async def test_a_refused_token_is_renewed_and_the_request_asked_once_more(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.party(FIRM)
    registry.refuse_tokens = {"t1"}
    party = await client(pki, registry, clock).party(FIRM)
    assert party is not None and party.party_id == FIRM
    assert [r.headers["authorization"] for r in registry.requests] == ["Bearer t1", "Bearer t2"]


async def test_a_token_refused_twice_fails_closed(pki: Pki, registry: Registry, clock: Clock) -> None:
    registry.party(FIRM)
    registry.refuse_tokens = {"t1", "t2", "t3"}
    c = client(pki, registry, clock)
    await unavailable(c.party(FIRM))
    assert len(registry.requests) == 2
    assert c.state()["error"] == f"the registry answered /parties/{FIRM} with status 401"


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"party_info": _entry(FIRM)}, FIRM),
        ({"partyInfo": _entry(FIRM)}, FIRM),
        ({"parties_info": {"count": 1, "data": [_entry(FIRM)]}}, FIRM),
        ({"parties_info": {"count": 0, "data": []}}, None),
        ({"parties_info": {"count": 0}}, None),
        ({"other": 1}, None),
    ],
)
async def test_a_party_entry_is_read_from_each_answer_shape(
    pki: Pki, registry: Registry, clock: Clock, info: dict[str, Any], expected: str | None
) -> None:
    registry.serve(f"/parties/{FIRM}", "party_token", lambda _: info)
    party = await client(pki, registry, clock).party(FIRM)
    assert (party.party_id if party else None) == expected


async def test_a_malformed_party_entry_fails_closed(pki: Pki, registry: Registry, clock: Clock) -> None:
    registry.party(FIRM, {"party_name": "no id"})
    await unavailable(client(pki, registry, clock).party(FIRM))


@pytest.mark.parametrize(
    "body",
    [
        {"party_info": 5},
        {"parties_info": ["an array"]},
        {"parties_info": {"count": 1, "data": 5}},
        {"parties_info": {"count": 1, "data": [5]}},
    ],
)
async def test_a_signed_party_answer_of_the_wrong_shape_fails_closed_not_as_a_500(
    pki: Pki, registry: Registry, clock: Clock, body: dict[str, Any]
) -> None:
    registry.serve(f"/parties/{FIRM}", "party_token", lambda _: body)
    await unavailable(client(pki, registry, clock).party(FIRM))


@pytest.mark.parametrize(
    "info",
    [["an array"], {"count": 1, "data": 5}, {"count": 1, "data": {"a": "dict"}}, {"count": 1, "data": [5]}],
)
async def test_a_signed_party_list_of_the_wrong_shape_fails_closed_not_as_a_500(
    pki: Pki, registry: Registry, clock: Clock, info: Any
) -> None:
    registry.serve("/parties", "parties_token", lambda _: {"parties_info": info})
    await unavailable(client(pki, registry, clock).parties())


async def test_a_trusted_list_entry_that_is_no_object_fails_closed_not_as_a_500(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    registry.serve("/trusted_list", "trusted_list_token", lambda _: {"trusted_list": [5]})
    await unavailable(client(pki, registry, clock).trusted())


def _pages(pki: Pki, registry: Registry, entries: list[dict[str, Any]], count: Any, size: int = 10) -> None:
    def page(request: httpx.Request) -> dict[str, Any]:
        n = int(request.url.params["page"])
        return {"parties_info": {"count": count, "data": entries[(n - 1) * size : n * size]}}

    registry.serve("/parties", "parties_token", page)


async def test_every_page_of_active_parties_is_read(pki: Pki, registry: Registry, clock: Clock) -> None:
    entries = [_entry(f"EU.EORI.NL1{i:08d}") for i in range(25)]
    _pages(pki, registry, entries, 25)
    parties = await client(pki, registry, clock).parties()
    assert [p.party_id for p in parties] == [e["party_id"] for e in entries]
    assert [dict(r.url.params) for r in registry.requests] == [
        {"active_only": "true", "page": str(n)} for n in (1, 2, 3)
    ]


async def test_paging_stops_at_the_count(pki: Pki, registry: Registry, clock: Clock) -> None:
    entries = [_entry(f"EU.EORI.NL1{i:08d}") for i in range(20)]
    _pages(pki, registry, entries, 20)
    assert len(await client(pki, registry, clock).parties()) == 20
    assert len(registry.requests) == 2


@pytest.mark.parametrize("count", [None, "25"])
async def test_paging_stops_after_one_page_without_a_numeric_count(
    pki: Pki, registry: Registry, clock: Clock, count: Any
) -> None:
    entries = [_entry(f"EU.EORI.NL1{i:08d}") for i in range(25)]
    _pages(pki, registry, entries, count)
    parties = await client(pki, registry, clock).parties()
    assert len(parties) == 10 and len(registry.requests) == 1


async def test_paging_stops_at_an_empty_page(pki: Pki, registry: Registry, clock: Clock) -> None:
    _pages(pki, registry, [_entry(FIRM)], 5, size=1)
    assert [p.party_id for p in await client(pki, registry, clock).parties()] == [FIRM]
    assert len(registry.requests) == 2


async def test_the_camel_case_parties_info_is_read(pki: Pki, registry: Registry, clock: Clock) -> None:
    registry.serve(
        "/parties", "parties_token", lambda _: {"partiesInfo": {"count": 1, "data": [_entry(FIRM)]}}
    )
    assert [p.party_id for p in await client(pki, registry, clock).parties()] == [FIRM]


async def test_a_malformed_party_in_the_list_fails_closed(pki: Pki, registry: Registry, clock: Clock) -> None:
    registry.serve("/parties", "parties_token", lambda _: {"parties_info": {"count": 1, "data": [{}]}})
    await unavailable(client(pki, registry, clock).parties())


async def test_a_registry_cannot_keep_a_node_paging_past_1000_pages(
    pki: Pki, registry: Registry, clock: Clock
) -> None:
    token = registry.sign({"parties_info": {"count": 10**9, "data": [_entry(FIRM)]}})
    registry.answers["/parties"] = lambda _: {"parties_token": token}
    parties = await client(pki, registry, clock, timeout=60).parties()
    assert len(parties) == 1000 and len(registry.requests) == 1000
