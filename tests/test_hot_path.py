"""A repeated resource read is answered before FastAPI's layers (``gateway.http.hot``),
and only when the application would answer it the same: anything it would decide
anew or refuse still reaches it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.audit import tail
from gateway.http.hot import HotPath
from tests.kit import CORP, FIRM, Federation, Pki, federation

pytestmark = pytest.mark.anyio
PATH = "/id/building/1"


@pytest.fixture
async def fed(tmp_path: Path, pki: Pki) -> AsyncIterator[Federation]:
    async with federation(tmp_path, pki, nodes=(FIRM, CORP)) as f:
        yield f


@pytest.fixture
async def client(fed: Federation) -> AsyncIterator[httpx.AsyncClient]:
    """CORP's client at FIRM's node, whose token and representation are already known there."""
    async with await fed.client_as(CORP) as c:
        (await c.get(PATH)).raise_for_status()
        yield c


def comparable(answer: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    return answer.status_code, answer.content, dict(answer.headers)


async def test_repeated_read_has_the_first_reads_status_body_and_headers(fed: Federation) -> None:
    async with await fed.client_as(CORP) as c:
        first, again = await c.get(PATH), await c.get(PATH)
    assert first.status_code == 200
    assert comparable(again) == comparable(first)


async def test_repeated_read_with_its_etag_is_304(client: httpx.AsyncClient) -> None:
    etag = (await client.get(PATH)).headers["etag"]
    answer = await client.get(PATH, headers={"if-none-match": etag})
    assert (answer.status_code, answer.content, answer.headers["etag"]) == (304, b"", etag)


async def test_repeated_read_with_two_authorization_headers_is_400(client: httpx.AsyncClient) -> None:
    token = client.headers["authorization"]
    answer = await client.get(PATH, headers=[("authorization", token), ("authorization", token)])
    assert answer.status_code == 400
    assert (answer.json()["code"], answer.json()["reason"]) == ("invalid_request", "authorization_malformed")


async def test_repeated_read_with_delegation_evidence_is_decided_by_the_node(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get(PATH, headers={"delegation_evidence": "not-a-jwt"})
    assert answer.status_code == 403
    assert answer.json()["code"] == "forbidden"


async def test_repeated_read_in_a_format_not_offered_is_406(client: httpx.AsyncClient) -> None:
    answer = await client.get(PATH, headers={"accept": "image/png"})
    assert answer.status_code == 406
    assert answer.json()["code"] == "not_acceptable"


async def test_repeated_read_after_the_token_expired_is_401_expired(
    fed: Federation, client: httpx.AsyncClient
) -> None:
    fed.clock.now += 3601
    answer = await client.get(PATH)
    assert answer.status_code == 401
    assert (answer.json()["code"], answer.json()["reason"]) == ("invalid_token", "expired")


async def test_repeated_read_without_the_token_is_401(fed: Federation, client: httpx.AsyncClient) -> None:
    async with fed.client(FIRM) as anonymous:
        answer = await anonymous.get(PATH)
    assert answer.status_code == 401
    assert (answer.json()["code"], answer.json()["reason"]) == ("invalid_token", "token_missing")


async def test_repeated_read_is_audited_with_the_first_request_id_sent_or_one_of_its_own(
    fed: Federation, client: httpx.AsyncClient
) -> None:
    for headers in ([("x-request-id", ""), ("x-request-id", "req-7"), ("x-request-id", "req-8")], []):
        assert (await client.get(PATH, headers=headers)).status_code == 200
    log = fed.nodes[FIRM].state.dsgo.audit
    assert log.flush(timeout=10)
    ids = [e["request_id"] for e in tail(log.path, 2)]
    assert ids[0] == "req-7"
    assert ids[1] and ids[1] not in ("req-7", "req-8")


async def test_a_token_ending_as_a_known_one_is_not_taken_for_it(client: httpx.AsyncClient) -> None:
    known = client.headers["authorization"]
    scheme, _, token = known.partition(" ")
    forged = f"{scheme} {'f' if token[0] != 'f' else 'g'}{token[1:]}"  # the same last bytes
    assert (await client.get(PATH)).status_code == 200  # a repeated read: known by its last bytes
    answer = await client.get(PATH, headers={"authorization": forged})
    assert answer.status_code == 401
    assert answer.json()["code"] == "invalid_token"
    assert (await client.get(PATH)).status_code == 200


async def test_a_hot_path_that_fails_hands_the_read_to_the_application(
    fed: Federation,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The hot path sits in front of the application's error handling: when it raises, the
    application answers the read as it would have, with its one audit entry."""
    before = await client.get(PATH)

    def broken(self: HotPath, scope: object) -> None:
        raise RuntimeError("a bug in the hot path")

    monkeypatch.setattr(HotPath, "_answer", broken)
    answer = await client.get(PATH, headers={"x-request-id": "after-the-bug"})
    assert comparable(answer) == comparable(before)
    assert "a hot path failed" in caplog.text
    log = fed.nodes[FIRM].state.dsgo.audit
    assert log.flush(timeout=10)
    assert [e["request_id"] for e in tail(log.path, 2)].count("after-the-bug") == 1


async def test_a_hot_path_failing_after_its_decision_leaves_the_read_one_audit_entry(
    fed: Federation, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record is made last: a hot path that fails writing its answer records nothing,
    and the application's answer makes the read's one entry."""
    import gateway.http.hot as hot

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in the answer")

    monkeypatch.setattr(hot, "reply", broken)
    assert (await client.get(PATH, headers={"x-request-id": "once"})).status_code == 200
    log = fed.nodes[FIRM].state.dsgo.audit
    assert log.flush(timeout=10)
    assert [e["request_id"] for e in tail(log.path, 3)].count("once") == 1
