"""The jti replay cache in Redis, and what it buys: workers of one node share it.

Against real processes: a private ``redis-server``, the registry (``dsgo registry``)
and two workers of one node (``dsgo serve`` twice, same config and keys, two ports).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from gateway.errors import TemporarilyUnavailable
from gateway.identity.assertions import ASSERTION_TYPE, make_assertion
from gateway.identity.replay import RedisReplayCache
from tests.servers import CLIENT, Federation, federation, free_port, redis_server

pytestmark = pytest.mark.integration

SHARED = "EU.EORI.NL000000001"  # its workers share one Redis
ALONE = "EU.EORI.NL000000003"  # its workers each keep their own replay cache


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


@pytest.fixture
async def cache(redis_url: str, prefix: str) -> AsyncIterator[RedisReplayCache]:
    replay = RedisReplayCache(redis_url, prefix)
    yield replay
    await replay.close()


@pytest.mark.anyio
async def test_redis_cache_accepts_a_key_once(cache: RedisReplayCache) -> None:
    assert await cache.first_use("client:jti-1", 30) is True
    assert await cache.first_use("client:jti-1", 30) is False


@pytest.mark.anyio
async def test_redis_cache_accepts_a_different_key(cache: RedisReplayCache) -> None:
    assert await cache.first_use("client:jti-1", 30) is True
    assert await cache.first_use("client:jti-2", 30) is True


@pytest.mark.anyio
async def test_redis_cache_keeps_a_key_for_its_ttl(
    redis_url: str, prefix: str, cache: RedisReplayCache
) -> None:
    import redis.asyncio as redis

    await cache.first_use("client:jti-1", 40)
    async with redis.from_url(redis_url) as client:
        assert 40 <= await client.ttl(prefix + "client:jti-1") <= 41


@pytest.mark.anyio
async def test_redis_cache_accepts_a_key_again_once_redis_expired_it(
    redis_url: str, prefix: str, cache: RedisReplayCache
) -> None:
    import redis.asyncio as redis

    await cache.first_use("client:jti-1", 40)
    async with redis.from_url(redis_url) as client:
        assert await client.pexpire(prefix + "client:jti-1", 1)  # as if its 40 s had passed
        for _ in range(1000):  # until Redis has expired it (a bound, not a wait)
            if not await client.exists(prefix + "client:jti-1"):
                break
            await asyncio.sleep(0.001)
        assert not await client.exists(prefix + "client:jti-1")
    assert await cache.first_use("client:jti-1", 40) is True


@pytest.mark.anyio
async def test_redis_cache_fails_closed_when_redis_cannot_be_reached() -> None:
    replay = RedisReplayCache(f"redis://127.0.0.1:{free_port()}/0", "test:")
    try:
        with pytest.raises(TemporarilyUnavailable, match="cannot be reached"):
            await replay.first_use("client:jti-1", 30)
    finally:
        await replay.close()


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Federation]:
    made = federation(tmp_path_factory.mktemp("federation"), {SHARED: redis_url, ALONE: None})
    with made.registry_process():
        yield made


@pytest.fixture(scope="module")
def shared_workers(fed: Federation) -> Iterator[tuple[str, str]]:
    """Two workers of the node whose replay cache is the shared Redis."""
    a, b = free_port(), free_port()
    with fed.node_process(SHARED, a), fed.node_process(SHARED, b):
        yield f"http://127.0.0.1:{a}", f"http://127.0.0.1:{b}"


def _token_request(fed: Federation, audience: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "scope": "iSHARE",
        "client_id": CLIENT,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": make_assertion(fed.identity(CLIENT), audience, time.time()),
    }


def test_assertion_replayed_on_another_worker_is_refused_when_workers_share_redis(
    fed: Federation, shared_workers: tuple[str, str]
) -> None:
    a, b = shared_workers
    form = _token_request(fed, SHARED)

    first = httpx.post(a + "/connect/token", data=form)
    assert first.status_code == 200, first.text
    assert first.json()["token_type"] == "Bearer" and first.json()["access_token"]

    replayed = httpx.post(b + "/connect/token", data=form)
    assert replayed.status_code == 401
    assert replayed.headers["content-type"] == "application/problem+json"
    problem = replayed.json()
    assert problem["code"] == "invalid_client"
    assert problem["error"] == "invalid_client"
    assert problem["reason"] == "jti_replayed"


def test_assertion_replayed_on_another_worker_is_accepted_without_shared_redis(fed: Federation) -> None:
    """The control: the same two workers, each with an in-process cache, both accept."""
    a, b = free_port(), free_port()
    form = _token_request(fed, ALONE)
    with fed.node_process(ALONE, a), fed.node_process(ALONE, b):
        first = httpx.post(f"http://127.0.0.1:{a}/connect/token", data=form)
        replayed = httpx.post(f"http://127.0.0.1:{b}/connect/token", data=form)
    assert first.status_code == 200, first.text
    assert replayed.status_code == 200, replayed.text


def test_access_token_from_one_worker_is_accepted_by_another(
    fed: Federation, shared_workers: tuple[str, str]
) -> None:
    a, b = shared_workers
    token = httpx.post(a + "/connect/token", data=_token_request(fed, SHARED)).json()["access_token"]

    answer = httpx.get(b + "/id/building/1", headers={"authorization": f"Bearer {token}"})

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/turtle")
    assert "Kerkstraat 1" in answer.text
