"""What does /sparql cost per query, and does one party's heavy use leave others served?

One real node (``dsgo serve``, authenticating, audit log on, two SPARQL workers) holds
``bench_policy.small_dataset`` (20 triples per building); for (a) it lets a party have 64
queries waiting, so that one client's 32 connections get answers, not 429s, and (b) runs
on a node with the default shares. It prints:

(a) a point lookup (one building's triples) through HTTP at one client, ``wrk -t1 -c1``
    (a C client, one connection, sequential requests: its own cost does not swamp the
    server's), time per request (target <= 300 µs) and server CPU per request: the node,
    the same question in a shape a worker answers, a bare Starlette route that runs the
    same pyoxigraph query in process on the same data and answers the same SPARQL JSON,
    and a trivial raw ASGI app under uvicorn (what HTTP alone costs here); beside them
    the same with an ``httpx.Client`` as the one client (Python's client costs most of
    that figure); then node and bare under ``wrk -t1 -c32`` (requests/s, node/bare);
(a0) in process, the node's ASGI app driven directly (no sockets): CPU per point look-up
    with the ``/sparql`` hot path and through FastAPI's layers (the hot path removed), and
    the bare route's handler the same way;
(b) another party's ``ASK {}`` latency (p50, p99 of sequential requests) idle, and while
    one party keeps eight heavy queries (a counted five-way cross product) in flight,
    retrying after ``Retry-After`` when refused (target: p99 under 5x idle).

Always exits 0: a report. The machine is shared: read the figures as this run saw them
(the in-process CPU figures least disturbed). wrk is installed by ``.ci/run``; without it
(a) falls back to the httpx figures.

    .venv/bin/python bench/bench_sparql.py [--buildings 200] [--requests 2000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
import pyoxigraph as ox  # noqa: E402
from bench_policy import NS, free_port, get_scope, small_dataset  # noqa: E402
from bench_resource import start, stop_all, wrk_command, wrk_result  # noqa: E402

FIRM, HEAVY_PARTY, OTHER = "EU.EORI.NL000000001", "EU.EORI.NL000000102", "EU.EORI.NL000000103"
LATENCY_TARGET, FAIRNESS_TARGET = 300e-6, 5.0
POINT = f"SELECT ?p ?o WHERE {{ <{NS}id/building/42> ?p ?o }}"
#: the same question in a shape the node leaves to a worker process
VIA_WORKER = f"SELECT ?p ?o WHERE {{ <{NS}id/building/42> ?p ?o FILTER(true) }}"
HEAVY = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l . ?m ?n2 ?o }"
ALL = "rules:\n  - {id: all, effect: permit, to: {anyone: true}, resources: all, fields: all}\n"


def bare_app(data: str | None = None) -> Any:
    """The baseline (a uvicorn ``--factory``): the same query on the same data, in process."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from gateway.formats.results import solutions

    store = ox.Store()
    store.bulk_load(path=data or os.environ["BENCH_DATA"], format=ox.RdfFormat.N_TRIPLES)

    async def endpoint(request: Request) -> Response:
        rows = store.query(request.query_params["query"])
        assert isinstance(rows, ox.QuerySolutions)
        variables = [v.value for v in rows.variables]
        body, media = solutions(variables, list(rows), "json")
        return Response(body, media_type=media)

    return Starlette(routes=[Route("/sparql", endpoint)])


def trivial_app() -> Any:
    """The floor (a uvicorn ``--factory``, ``--lifespan off``): a raw ASGI app answering
    every request with a few fixed bytes, so what is left is HTTP on loopback."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def make_node(tmp: Path, buildings: int) -> tuple[Path, str]:
    """The node of (a): room for wrk's 32 connections of one party, so that (a) measures
    answers, not 429s."""
    from gateway.identity.pki import make_ca, make_party

    make_ca(tmp / "ca")
    make_party(FIRM, tmp / "firm", tmp / "ca", name="Bench B.V.")
    (tmp / "data.nt").write_bytes(
        ox.serialize(small_dataset(buildings), format=ox.RdfFormat.N_TRIPLES) or b""
    )
    (tmp / "policies").mkdir()
    (tmp / "policies" / "all.yaml").write_text(ALL)
    return node_file(tmp, "node", "sparql_party_queue = 64\nsparql_queue = 128\n")


def node_file(tmp: Path, name: str, extra: str = "") -> tuple[Path, str]:
    """``tmp/name.toml`` for the data, keys and policy ``make_node`` wrote, on a port of
    its own; ``extra``: more ``[node]`` settings. (b)'s node has the default shares."""
    port = free_port()
    (tmp / f"{name}.toml").write_text(
        f'[node]\nparty_id = "{FIRM}"\nname = "Bench B.V."\nbase_iri = "{NS}"\nhost = "127.0.0.1"\n'
        f"port = {port}\nsparql_timeout = 5\nsparql_workers = 2\n{extra}\n"
        '[[source]]\nname = "bench"\ntype = "rdf"\npath = "data.nt"\n\n'
        f'[keys]\ndir = "{tmp / "firm"}"\n'
        f'[registry]\nurl = "http://127.0.0.1:9"\nparty_id = "EU.EORI.NL000000000"\n'
        f'ca = ["{tmp / "ca" / "root.cert.pem"}"]\n[policies]\ndir = "policies"\n'
    )
    return tmp / f"{name}.toml", f"http://127.0.0.1:{port}"


def tokens(tmp: Path) -> dict[str, str]:
    from gateway.identity.pki import load_identity
    from gateway.identity.tokens import TokenIssuer

    issuer = TokenIssuer(load_identity(tmp / "firm"))
    return {p: issuer.issue(p, time.time()) for p in (HEAVY_PARTY, OTHER)}


def per_request(url: str, headers: dict[str, str], n: int) -> list[float]:
    """Seconds per sequential GET of ``url`` by an ``httpx.Client``, one kept-alive connection."""
    times = []
    with httpx.Client(headers=headers) as client:
        for _ in range(max(50, n // 10)):  # warm up: workers, snapshot, caches
            client.get(url).raise_for_status()
        for _ in range(n):
            started = time.perf_counter()
            client.get(url).raise_for_status()
            times.append(time.perf_counter() - started)
    return times


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and of its live children (the SPARQL workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    kids = [c for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    for each in (str(pid), *kids):
        with contextlib.suppress(FileNotFoundError):
            fields = Path(f"/proc/{each}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wrk_one(url: str, seconds: float, headers: dict[str, str]) -> tuple[float, int]:
    """``wrk -t1 -c1`` (one connection, sequential requests) for ``seconds``: (seconds per
    request, requests); errors make the figure suspect and are printed."""
    cmd = ["wrk", "-t1", "-c1", f"-d{max(1, round(seconds))}s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    problems: list[str] = []
    rate, done = wrk_result(url, out, problems)
    if not rate:
        raise RuntimeError(f"wrk got no answers:\n{out}")
    for problem in problems:
        print(f"    wrk saw errors, results are suspect: {problem}")
    return 1 / rate, done


def latency(runs: list[Run], n: int, seconds: float) -> None:
    """(a): each run's time and server CPU per request at one client, wrk's (when
    installed) and httpx's, half each way round so that drift hits all alike."""
    have_wrk = shutil.which("wrk") is not None
    for client in ("wrk", "httpx") if have_wrk else ("httpx",):
        per: dict[str, list[float]] = {}
        cpu: dict[str, tuple[float, int]] = {}
        for order in (runs, runs[::-1]):
            for run in order:
                before = cpu_seconds(run.pid)
                if client == "wrk":
                    per_request(run.url + run.path, run.headers, 0)  # warm up: workers, snapshot, caches
                    before = cpu_seconds(run.pid)
                    took, done = wrk_one(run.url + run.path, seconds / 2, run.headers)
                    per.setdefault(run.who, []).append(took)
                else:
                    times, done = per_request(run.url + run.path, run.headers, n // 2), n // 2
                    per.setdefault(run.who, []).extend(times)
                    done += max(50, n // 20)  # the warm-up's requests
                spent, count = cpu.get(run.who, (0.0, 0))
                cpu[run.who] = (spent + cpu_seconds(run.pid) - before, count + done)
        means = {who: statistics.fmean(times) for who, times in per.items()}
        if client == "wrk":
            print(f"\n(a) point lookup through HTTP, one client: wrk -t1 -c1, {seconds:g} s per server")
        else:
            print(
                f"    the same with an httpx.Client as the one client ({n} requests each; its cost included):"
            )
        for run in runs:
            spent, count = cpu[run.who]
            print(
                f"    {run.who + ':':34} {means[run.who] * 1e6:5.0f} µs per request, "
                f"server CPU {spent / count * 1e6:4.0f} µs per request"
            )
        mean, bare = means["node"], means["bare Starlette route"]
        verdict = "PASS" if mean <= LATENCY_TARGET else "FAIL"
        if client == "httpx" and have_wrk:
            verdict = "for reference, wrk's is the figure"
        print(
            f"    node {mean * 1e6:.0f} µs per request by {client} "
            f"(target <= {LATENCY_TARGET * 1e6:.0f} µs): {verdict}; node/bare time {mean / bare:.2f}"
        )


@dataclass(frozen=True)
class Run:
    """One server (a process) asked one question at one client in (a)."""

    who: str
    url: str
    headers: dict[str, str]
    query: str | None
    pid: int

    @property
    def path(self) -> str:
        return "/sparql?query=" + quote(self.query) if self.query is not None else "/"


def throughput(node: str, bare: str, token: str, seconds: float) -> None:
    if shutil.which("wrk") is None:
        print("    (wrk run skipped: install wrk)")
        return
    path = "/sparql?query=" + quote(POINT)
    problems: list[str] = []
    rates = {}
    for who, url, headers in (("bare", bare, {}), ("node", node, {"Authorization": f"Bearer {token}"})):
        out = subprocess.run(
            wrk_command(url + path, seconds, headers), capture_output=True, text=True, check=True
        )
        rates[who] = wrk_result(url, out.stdout, problems)[0]
    print(
        f"    wrk -t1 -c32: node {rates['node']:.0f} req/s, bare route {rates['bare']:.0f} req/s, "
        f"node/bare {rates['node'] / rates['bare']:.2f}"
    )
    for problem in problems:
        print(f"    wrk saw errors, results are suspect: {problem}")


def in_process(toml: Path, data: Path, token: str, n: int) -> None:
    """(a0): the node's app (with and without the hot path) and the bare route's app driven
    directly in this process; CPU per request, the same bytes checked."""
    from gateway.config import load_node_settings
    from gateway.http.app import create_app
    from gateway.http.hot_sparql import SparqlHotPath

    hot = create_app(load_node_settings(toml), watch=False)
    full = create_app(load_node_settings(toml), watch=False)
    hot_path: Any = SparqlHotPath
    full.front = [m for m in full.front if m.cls is not hot_path]
    auth = [(b"authorization", f"Bearer {token}".encode())]
    apps: tuple[tuple[str, Any, list[tuple[bytes, bytes]]], ...] = (
        ("node, hot path", hot, auth),
        ("node, FastAPI's layers", full, auth),
        ("bare route", bare_app(str(data)), []),
    )

    async def drive() -> dict[str, tuple[float, bytes]]:
        async with hot.router.lifespan_context(hot), full.router.lifespan_context(full):
            out = {}
            for _ in range(2):  # the second round counts: warm caches and workers
                for who, app, headers in apps:
                    out[who] = await _drive(app, headers, n)
            return out

    figures = asyncio.run(drive())
    print(f"\n(a0) in process, the ASGI app driven directly ({n} point look-ups each), CPU per request:")
    for who, (cpu, _) in figures.items():
        print(f"    {who + ':':34} {cpu * 1e6:5.0f} µs")
    (hot_cpu, hot_body), (full_cpu, full_body) = figures["node, hot path"], figures["node, FastAPI's layers"]
    print(
        f"    hot path / FastAPI's layers {hot_cpu / full_cpu:.2f}, "
        f"hot path / bare route {hot_cpu / figures['bare route'][0]:.2f}; "
        f"the node's two answers {'the same bytes' if hot_body == full_body else 'DIFFER'}"
    )


async def _drive(app: Any, headers: list[tuple[bytes, bytes]], n: int) -> tuple[float, bytes]:
    """CPU seconds per GET of the point look-up through ``app`` and the last answer's body."""
    scope = get_scope("/sparql", [(b"host", b"127.0.0.1"), *headers], ("query=" + quote(POINT)).encode())
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for _ in range(max(100, n // 10)):
        sent.clear()
        await app(dict(scope), receive, send)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"the point look-up was answered {sent[0]['status']} in process")
    started = time.process_time()
    for _ in range(n):
        sent.clear()
        await app(dict(scope), receive, send)
    return (time.process_time() - started) / n, sent[1]["body"]


def asks(client: httpx.Client, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        answer = client.post(
            "/sparql", content=b"ASK {}", headers={"content-type": "application/sparql-query"}
        )
        answer.raise_for_status()
        times.append(time.perf_counter() - started)
    return times


def heavy_user(url: str, token: str, stop: threading.Event, counts: dict[int, int]) -> None:
    """Keeps one heavy query in flight; on 429/503 waits what Retry-After says."""
    headers = {"authorization": f"Bearer {token}", "content-type": "application/sparql-query"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        while not stop.is_set():
            answer = client.post("/sparql", content=HEAVY.encode())
            counts[answer.status_code] = counts.get(answer.status_code, 0) + 1
            if answer.status_code in (429, 503):
                stop.wait(float(answer.headers.get("retry-after", "1")))


def p(times: list[float], q: float) -> float:
    return sorted(times)[min(len(times) - 1, int(q * len(times)))]


def fairness(url: str, keys: dict[str, str], n: int) -> None:
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {keys[OTHER]}"}, timeout=60) as client:
        asks(client, 50)
        idle = asks(client, n)
        stop, counts = threading.Event(), dict[int, int]()
        users = [
            threading.Thread(target=heavy_user, args=(url, keys[HEAVY_PARTY], stop, counts)) for _ in range(8)
        ]
        for user in users:
            user.start()
        time.sleep(1)  # the heavy queries take their workers
        loaded = asks(client, n)
        stop.set()
        for user in users:
            user.join()
    ratio = p(loaded, 0.99) / p(idle, 0.99)
    verdict = "PASS" if ratio < FAIRNESS_TARGET else "FAIL"
    print(f"\n(b) another party's ASK {{}}, {n} sequential requests")
    for when, times in (("idle", idle), ("one party's 8 heavy in flight", loaded)):
        print(f"    {when + ':':32} p50 {p(times, 0.5) * 1e3:6.2f} ms, p99 {p(times, 0.99) * 1e3:6.2f} ms")
    print(f"    p99 loaded/idle {ratio:.1f}x (target < {FAIRNESS_TARGET:g}x): {verdict}")
    print(f"    the heavy party's answers by status: {dict(sorted(counts.items()))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--buildings", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000, help="(a), (b): sequential requests")
    parser.add_argument("--seconds", type=float, default=5, help="(a): length of each wrk run")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"Python {sys.version.split()[0]}, pyoxigraph {ox.__version__}; the machine may be shared")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-sparql-") as name:
            tmp = Path(name)
            toml, node = make_node(tmp, args.buildings)
            keys = tokens(tmp)
            procs.append(
                start(
                    [str(BIN / "dsgo"), "serve", str(toml)], node + "/health", tmp / "node.log", timeout=120
                )
            )
            bare_port = free_port()
            bare = f"http://127.0.0.1:{bare_port}"
            cmd = [
                str(BIN / "uvicorn"),
                "--factory",
                "bench_sparql:bare_app",
                "--app-dir",
                str(ROOT / "bench"),
            ]
            cmd += [
                "--host",
                "127.0.0.1",
                "--port",
                str(bare_port),
                "--log-level",
                "warning",
                "--no-access-log",
            ]
            env = {k: v for k, v in os.environ.items() if not k.startswith("DSGO_")} | {
                "BENCH_DATA": str(tmp / "data.nt")
            }
            procs.append(start(cmd, bare + "/sparql?query=" + quote(POINT), tmp / "bare.log", env))
            trivial_port = free_port()
            trivial = f"http://127.0.0.1:{trivial_port}"
            cmd = [str(BIN / "uvicorn"), "--factory", "bench_sparql:trivial_app", "--lifespan", "off"]
            cmd += ["--app-dir", str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(trivial_port)]
            cmd += ["--log-level", "warning", "--no-access-log"]
            procs.append(start(cmd, trivial + "/", tmp / "trivial.log"))
            auth = {"authorization": f"Bearer {keys[OTHER]}"}
            runs = [
                Run("node", node, auth, POINT, procs[0].pid),
                Run("node, by a worker", node, auth, VIA_WORKER, procs[0].pid),
                Run("bare Starlette route", bare, {}, POINT, procs[1].pid),
                Run("trivial ASGI app (HTTP alone)", trivial, {}, None, procs[2].pid),
            ]
            latency(runs, args.requests, args.seconds)
            throughput(node, bare, keys[OTHER], args.seconds)
            stop_all(procs[:1], signal.SIGINT, 30)  # (b) on a node with the default shares
            in_process(toml, tmp / "data.nt", keys[OTHER], args.requests)
            toml, fair = node_file(tmp, "fair")
            procs.append(start([str(BIN / "dsgo"), "serve", str(toml)], fair + "/health", tmp / "fair.log"))
            fairness(fair, keys, args.requests // 4)
    except KeyboardInterrupt:
        return 130
    finally:
        stop_all(procs, signal.SIGINT, 30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
