"""The node's watcher, which re-reads changed policy files and sources while it serves."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from gateway.config import NodeSettings
from tests.conftest import serving

pytestmark = pytest.mark.anyio
WAIT = 10  # seconds: a bound on waiting for the watcher's thread, never a timing assertion


async def test_a_failing_pass_is_logged_and_the_watcher_goes_on(
    settings: NodeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    again = threading.Event()

    def refresh_all() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("the disk went away")
        again.set()
        return False

    async with serving(settings, watch=True) as (app, _):
        app.state.dsgo.node.sources.refresh_all = refresh_all
        assert await asyncio.to_thread(again.wait, WAIT)
    assert len(calls) >= 2
    assert any(
        r.levelno == logging.ERROR and r.exc_info and isinstance(r.exc_info[1], OSError)
        for r in caplog.records
    )


async def test_a_pass_under_way_when_the_node_stops_finishes_before_its_store_closes(
    settings: NodeSettings,
) -> None:
    entered, release = threading.Event(), threading.Event()
    seen: list[object] = []
    context = serving(settings, watch=True)
    app, _ = await context.__aenter__()
    node = app.state.dsgo.node

    def refresh_all() -> bool:
        entered.set()
        release.wait(WAIT)
        try:  # the store must still be open here, after the node was told to stop
            seen.append(len(node.store.source_triples("buildings")))
        except Exception as error:
            seen.append(error)
        return False

    node.sources.refresh_all = refresh_all
    assert await asyncio.to_thread(entered.wait, WAIT)
    stopping = asyncio.ensure_future(context.__aexit__(None, None, None))
    done, _ = await asyncio.wait([stopping], timeout=0.5)  # the stop waits for the pass
    assert not done
    release.set()
    await stopping
    assert len(seen) == 1
    assert isinstance(seen[0], int) and seen[0] > 0
