"""In-process apps on real loopback sockets, for clients that speak only HTTP (SPARQLWrapper,
schemathesis): the apps are made and served by uvicorn in one event loop on a thread of
the test process; ``Served.run`` runs a coroutine in that loop (to mint a token, say)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from tests.conftest import free_port

Apps = Callable[[], contextlib.AbstractAsyncContextManager[tuple[Any, Mapping[str, Any]]]]


@dataclass
class Served:
    """What ``make`` yielded, and each app's base URL by name."""

    value: Any = None
    urls: dict[str, str] = field(default_factory=dict)
    loop: asyncio.AbstractEventLoop | None = None

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)


@contextlib.contextmanager
def loopback(make: Apps) -> Iterator[Served]:
    """Serve the apps ``make()`` yields (already in their lifespans) until the block ends."""
    served, ready, failed = Served(), threading.Event(), []
    stop: list[asyncio.Event] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        async with make() as (value, apps), _servers(apps) as urls:
            served.value, served.urls, served.loop = value, urls, asyncio.get_running_loop()
            ready.set()
            await stop[0].wait()

    def thread() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # shown in the test, not lost in the thread
            failed.append(exc)
            ready.set()

    worker = threading.Thread(target=thread, daemon=True)
    worker.start()
    ready.wait(timeout=120)
    if failed:
        raise failed[0]
    try:
        yield served
    finally:
        assert served.loop is not None
        served.loop.call_soon_threadsafe(stop[0].set)
        worker.join(timeout=30)


@contextlib.asynccontextmanager
async def _servers(apps: Mapping[str, Any]) -> AsyncIterator[dict[str, str]]:
    servers, tasks, urls = [], [], {}
    for name, app in apps.items():
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
        server = uvicorn.Server(config)
        servers.append(server)
        tasks.append(asyncio.create_task(server.serve()))
        urls[name] = f"http://127.0.0.1:{port}"
    try:
        for server in servers:
            for _ in range(500):  # bounded: started within 5 s
                if server.started:
                    break
                await asyncio.sleep(0.01)
        yield urls
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
