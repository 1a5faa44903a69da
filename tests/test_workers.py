"""``dsgo serve --workers 2``: two real worker processes on one port share the replay cache
(Redis) and the audit log (one chain), and each serves the node's data."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.audit import verify
from gateway.identity.assertions import ASSERTION_TYPE, make_assertion
from tests.servers import CLIENT, DSGO, NODE, federation, process, redis_server
from tests.test_faults import _children

pytestmark = pytest.mark.integration


def test_two_workers_accept_an_assertion_once_and_keep_one_audit_chain(tmp_path: Path) -> None:
    with redis_server() as redis:
        fed = federation(tmp_path, {NODE: redis})
        url = fed.urls[NODE]
        with contextlib.ExitStack() as stack:
            stack.enter_context(fed.registry_process())
            argv = [DSGO, "serve", str(fed.nodes[NODE]), "--workers", "2"]
            serving = stack.enter_context(process(argv, url, timeout=60))
            workers = [p for p in _children(serving.pid) if _is_worker(p)]
            client = fed.identity(CLIENT)
            form = {
                "grant_type": "client_credentials",
                "scope": "iSHARE",
                "client_id": CLIENT,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": make_assertion(client, NODE, time.time()),
            }
            answers = asyncio.run(_same_assertion_many_times(url, form, 8))
            token = next(a.json()["access_token"] for a in answers if a.status_code == 200)
            reads = asyncio.run(_reads(url, token, 40))
        report = verify(fed.nodes[NODE].parent / "state" / "audit.sqlite")
    assert len(workers) == 2
    assert sorted(a.status_code for a in answers) == [200] + [401] * 7
    assert {a.json()["code"] for a in answers if a.status_code != 200} == {"invalid_client"}
    assert [r.status_code for r in reads] == [200] * 40
    assert report.ok and report.entries == 40 and report.gaps == ()


def _is_worker(pid: int) -> bool:
    """A uvicorn worker runs Python's multiprocessing spawn: not the resource tracker."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"spawn_main" in part for part in cmdline)


async def _same_assertion_many_times(url: str, form: dict[str, str], n: int) -> list[httpx.Response]:
    """The one assertion, sent on ``n`` fresh connections at once (so to both workers)."""

    async def once() -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as http:
            return await http.post(url + "/connect/token", data=form)

    return list(await asyncio.gather(*(once() for _ in range(n))))


async def _reads(url: str, token: str, n: int) -> list[httpx.Response]:
    async def once() -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as http:
            return await http.get(url + "/id/building/1", headers={"authorization": f"Bearer {token}"})

    return list(await asyncio.gather(*(once() for _ in range(n))))


def test_workers_without_redis_are_refused_with_one_line(tmp_path: Path) -> None:
    fed = federation(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", str(fed.nodes[NODE]), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "node.redis: --workers 2 needs it" in done.stderr and len(done.stderr.splitlines()) == 1
