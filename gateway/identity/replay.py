"""The ``jti`` replay cache: an assertion is accepted at most once.

In process by default; in Redis when the node is configured with one, so that every
worker and replica of a node shares it (``SET key 1 NX EX ttl`` is atomic). If Redis
cannot be reached the token request fails closed.
"""

from __future__ import annotations

import time
from typing import Protocol

from gateway.errors import TemporarilyUnavailable

__all__ = ["MemoryReplayCache", "RedisReplayCache", "ReplayCache", "replay_cache"]


class ReplayCache(Protocol):
    async def first_use(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; False if it was already recorded."""

    async def check(self) -> str | None:
        """None if the cache can take entries now, else why not (for ``/health``)."""

    async def close(self) -> None: ...


class MemoryReplayCache:
    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._seen: dict[str, float] = {}
        self._max = max_entries
        self._next_purge = 0.0

    async def first_use(self, key: str, ttl: float) -> bool:
        now = time.monotonic()
        if now >= self._next_purge or len(self._seen) >= self._max:
            self._seen = {k: t for k, t in self._seen.items() if t > now}
            self._next_purge = now + 10
            if len(self._seen) >= self._max:
                raise TemporarilyUnavailable("too many token requests at once; try again shortly")
        until = self._seen.get(key)
        if until is not None and until > now:
            return False
        self._seen[key] = now + max(ttl, 1.0)
        return True

    async def check(self) -> str | None:
        return None

    async def close(self) -> None:
        self._seen.clear()


class RedisReplayCache:
    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix

    async def first_use(self, key: str, ttl: float) -> bool:
        import redis

        try:
            added = await self._redis.set(self._prefix + key, b"1", nx=True, ex=max(int(ttl) + 1, 1))
        except (redis.RedisError, OSError) as exc:
            raise TemporarilyUnavailable(f"the replay cache (Redis) cannot be reached: {exc}") from None
        return bool(added)

    async def check(self) -> str | None:
        import redis

        try:
            await self._redis.ping()
        except (redis.RedisError, OSError) as exc:
            return f"Redis cannot be reached: {exc}"
        return None

    async def close(self) -> None:
        await self._redis.aclose()


def replay_cache(redis_url: str | None, party_id: str) -> ReplayCache:
    if redis_url:
        return RedisReplayCache(redis_url, f"dsgo:jti:{party_id}:")
    return MemoryReplayCache()
