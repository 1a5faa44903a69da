"""The SPARQL worker pool's fair shares, with real worker processes (``gateway.sparql.pool``)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.errors import QueryLimit
from gateway.sparql.pool import QueryPool
from gateway.sparql.worker import Request
from gateway.store.local import Store

pytestmark = pytest.mark.anyio
NS = "https://data.test.example/"
_VALUES = " ".join(str(i) for i in range(60))
#: heavy without data: a count over 60^5 rows, far beyond any limit here
HEAVY = "SELECT (COUNT(*) AS ?n) WHERE { " + " ".join(f"VALUES ?{v} {{ {_VALUES} }}" for v in "abcde") + " }"
WAIT = 20  # seconds: a bound on waiting, never a timing assertion


async def _until(condition: object, what: str) -> None:
    for _ in range(WAIT * 20):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {WAIT} s: {what}")


async def test_a_party_whose_killed_query_is_replaced_waits_instead_of_taking_the_free_worker() -> None:
    pool = QueryPool(Store(), base_iri=NS, prefixes={}, workers=2)  # one share per party
    snapshot = await pool.snapshot()

    def job(query: str) -> Request:
        return Request(snapshot.folder, (), query, "application/json", 100, NS)

    assert (await pool.run("B", job("ASK {}"), 10)).body  # both workers start
    await _until(lambda: len(pool._workers) == 2, "two workers")
    gate = asyncio.Event()  # the killed worker's replacement starts only when the test says
    start = pool._start_worker

    async def gated() -> None:
        await gate.wait()
        await start()

    pool._start_worker = gated  # type: ignore[method-assign]
    try:
        first = asyncio.ensure_future(pool.run("A", job(HEAVY), 0.5))
        await _until(lambda: pool._q.running["A"] == 1, "A's first query running")
        second = asyncio.ensure_future(pool.run("A", job(HEAVY), WAIT))  # waits: A's share is taken
        with pytest.raises(QueryLimit):
            await first  # killed at its limit; its replacement waits for the gate
        answer = await pool.run("B", job("ASK {}"), WAIT / 2)  # the worker left for others
        assert b"true" in answer.body
        assert not second.done() and pool._q.running["A"] == 1  # still waiting for the replacement
        second.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await second
    finally:
        gate.set()
        await pool.close()
