"""What does authentication cost a node? Two figures, from real processes on loopback.

1. Resource GET throughput with and without bearer authentication: two `dsgo serve`
   processes serving the same data file, an ``open = true`` node and one that needs a
   token (obtained once, as clients do) and, like every such node, applies its policy
   (here: everything to any authenticated party). ``wrk -t1 -c32`` loads
   ``GET /id/building/1`` on each, alternating for several rounds; the median ratio
   bearer/open must be >= 0.85 (authentication costs at most 15 % of throughput).
2. Token requests per second on one worker: every assertion needs a fresh jti, so N
   valid assertions are made up front, then posted to ``/connect/token`` 16 at a time
   over keep-alive connections, once the node's registry cache is warm. Target: >= 1,000
   per second. The poster is a minimal asyncio HTTP/1.1 client: ``httpx.AsyncClient``
   spends 1.5-3 ms of CPU per request here (its pool bookkeeping, h11), more than the
   node, so it measures itself (``--client httpx`` shows it). The node's own CPU time
   per token request is printed too, which no client can distort.

The federation (PKI, registry, node) is the integration tests' (``tests/servers.py``).
Always exits 0 once measured: a report, not a test.

    .venv/bin/python bench/bench_auth.py [--seconds 5] [--rounds 3] [--assertions 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_resource import cpu_seconds, wrk  # noqa: E402

from gateway.identity.assertions import ASSERTION_TYPE, make_assertion  # noqa: E402
from gateway.identity.pki import Identity  # noqa: E402
from tests.conftest import NS  # noqa: E402
from tests.servers import CLIENT, DSGO, NODE, Federation, federation, free_port, process  # noqa: E402

PATH = "/id/building/1"
RATIO_TARGET = 0.85
TOKENS_TARGET = 1_000.0
CONCURRENCY = 16
FORM = {"content-type": "application/x-www-form-urlencoded"}


def token_form(client: Identity, audience: str) -> bytes:
    """A client_credentials request with a fresh assertion (RFC 7523, iSHARE)."""
    form = {
        "grant_type": "client_credentials",
        "scope": "iSHARE",
        "client_id": client.party_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": make_assertion(client, audience, time.time()),
    }
    return urlencode(form).encode()


def open_node(fed: Federation, url: str) -> Path:
    """An open node (no keys, registry or policy) serving the federation's data file."""
    path = fed.folder / "open.toml"
    path.write_text(
        f'[node]\nparty_id = "{NODE}"\nname = "Open"\nbase_iri = "{NS}"\nport = {urlsplit(url).port}\n'
        'open = true\n\n[[source]]\nname = "buildings"\ntype = "rdf"\npath = "buildings.ttl"\n'
    )
    return path


def unlabelled(turtle: str) -> str:
    """Blank node labels are made per process; the rest must be byte for byte equal."""
    return re.sub(r"_:\w+", "_:b", turtle)


async def fire(url: str, bodies: list[bytes], client: str) -> tuple[float, Counter[int]]:
    """POST every body to ``url``, ``CONCURRENCY`` at a time; (seconds, status counts)."""
    statuses: Counter[int] = Counter()
    queue: Iterator[bytes] = iter(bodies)
    host, port = urlsplit(url).hostname or "", urlsplit(url).port or 80
    head = f"POST {urlsplit(url).path} HTTP/1.1\r\nhost: {host}:{port}\r\n"
    head += "content-type: application/x-www-form-urlencoded\r\ncontent-length: %d\r\n\r\n"

    async def raw() -> None:  # one keep-alive connection; every answer has a content-length
        reader, writer = await asyncio.open_connection(host, port)
        for body in queue:
            writer.write((head % len(body)).encode() + body)
            answer = await reader.readuntil(b"\r\n\r\n")
            statuses[int(answer.split(b" ", 2)[1])] += 1
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", answer)
            await reader.readexactly(int(length.group(1)) if length else 0)
        writer.close()
        await writer.wait_closed()

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:

        async def with_httpx() -> None:
            for body in queue:
                statuses[(await http.post(url, content=body, headers=FORM)).status_code] += 1

        worker = raw if client == "raw" else with_httpx
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - start, statuses


def run(tmp: Path, seconds: int, rounds: int, assertions: int, client_kind: str) -> None:
    fed = federation(tmp)
    client = fed.identity(CLIENT)
    secured, open_ = fed.urls[NODE], f"http://127.0.0.1:{free_port()}"
    with contextlib.ExitStack() as stack:
        stack.enter_context(fed.registry_process())
        node = stack.enter_context(fed.node_process(NODE))
        stack.enter_context(process([DSGO, "serve", str(open_node(fed, open_))], open_))

        answer = httpx.post(secured + "/connect/token", content=token_form(client, NODE), headers=FORM)
        bearer = {"Authorization": f"Bearer {answer.raise_for_status().json()['access_token']}"}
        refused = httpx.get(secured + PATH).status_code
        mine, theirs = httpx.get(secured + PATH, headers=bearer), httpx.get(open_ + PATH)
        if refused != 401 or mine.status_code != 200 or unlabelled(mine.text) != unlabelled(theirs.text):
            seen = f"{refused} {mine.status_code} {theirs.status_code}"
            raise RuntimeError(f"the nodes do not serve alike (no token, bearer, open): {seen}")

        problems: list[str] = []
        rps: dict[str, list[float]] = {"open": [], "bearer": []}
        targets = {"open": (open_, {}), "bearer": (secured, bearer)}
        for url, headers in targets.values():  # warm up: connections, caches
            wrk(url + PATH, 1, problems, headers)
        for r in range(rounds):  # alternate which goes first, so drift hits both alike
            for who in ["open", "bearer"][:: 1 if r % 2 == 0 else -1]:
                url, headers = targets[who]
                rps[who].append(wrk(url + PATH, seconds, problems, headers))
                print(f"round {r + 1}/{rounds} {who:6}: {rps[who][-1]:9.0f} req/s", flush=True)

        made = time.perf_counter()
        bodies = [token_form(client, NODE) for _ in range(assertions)]
        made = time.perf_counter() - made
        print(f"made {assertions} assertions in {made:.1f} s; posting them", flush=True)
        cpu = cpu_seconds(node.pid)
        took, statuses = asyncio.run(fire(secured + "/connect/token", bodies, client_kind))
        cpu = cpu_seconds(node.pid) - cpu

    o, b = statistics.median(rps["open"]), statistics.median(rps["bearer"])
    per_s = assertions / took
    failed = sum(n for status, n in statuses.items() if status != 200)
    cpu_ms, busy = cpu / assertions * 1000, cpu / took
    ratio_ok = "PASS" if b / o >= RATIO_TARGET else "FAIL"
    tokens_ok = "PASS" if per_s >= TOKENS_TARGET and not failed else "FAIL"
    print(f"\nnproc {os.cpu_count()}; one uvicorn worker per node; loopback")
    print(f"wrk -t1 -c32 -d{seconds}s, median of {rounds} rounds; {assertions} token requests")
    row("measure", "value", "target", "verdict")
    row(f"GET {PATH} open, req/s", f"{o:.0f}")
    row(f"GET {PATH} bearer, req/s", f"{b:.0f}")
    row("  ratio bearer/open", f"{b / o:.2f}", f">= {RATIO_TARGET}", ratio_ok)
    row(f"POST /connect/token, req/s (c={CONCURRENCY}, {client_kind})", f"{per_s:.0f}", ">= 1000", tokens_ok)
    row("  non-200 answers", f"{failed}", "0")
    row("  node CPU per token request, ms", f"{cpu_ms:.2f}")
    row("  node busy while posting", f"{busy:.0%}")
    row("  one worker at 100 % CPU, req/s", f"{1000 / cpu_ms:.0f}")
    if busy < 0.9:
        print(f"the node was busy {busy:.0%} of the time: the client ({client_kind}) or others set the pace")
    for problem in problems:
        print(f"wrk saw errors, results are suspect: {problem}")


def row(measure: str, value: str, target: str = "", verdict: str = "") -> None:
    print(f"{measure:46} {value:>8} {target:>8}  {verdict}".rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="open/bearer alternations")
    parser.add_argument("--assertions", type=int, default=3000, help="token requests to post")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw", help="who posts them")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench_auth: wrk is missing; install it with `apt-get install wrk`", file=sys.stderr)
        return 1
    try:
        with tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp:
            run(Path(tmp), args.seconds, args.rounds, args.assertions, args.client)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
