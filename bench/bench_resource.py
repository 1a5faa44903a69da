"""How close does a node come to a bare Starlette app when serving one resource?

Starts, on loopback, two real nodes (``dsgo serve``, one uvicorn worker each) whose data
is one building with 50 triples: an *open* one (no tokens, no policy) and an
*authenticated* one (a bearer token checked on every request, a policy that withholds 2
of the 50 fields, the audit log on). Beside each, a bare Starlette app (``uvicorn``, one
worker) answers that node's exact Turtle and JSON-LD bytes, content-type, ETag, Vary and
withheld-fields header from memory. ``wrk -t1 -c32`` loads ``GET /id/building/42`` on
each with the same request (the bearer token too, for the authenticated pair),
alternating bare and node runs for several rounds, and the table shows the median
requests/s, node/bare and the target: open Turtle >= 0.50, JSON-LD >= 0.35;
authenticated >= 0.75 in both, and within 5 points of the open node's ratio. A second
table gives each server's own CPU time per request (the audit writer's thread
included), which other load on the machine moves far less. Each bare route sends the
headers its node sends (all but content-length and date, which uvicorn and Starlette add
to both), the withheld-fields IRIs included.

``--in-process`` takes the network, wrk and the other processes out: both nodes and both
bare apps run in this process, each behind uvicorn's own HTTP protocol (httptools, as
``dsgo serve`` runs it) on a transport that only collects the bytes, fed the very request
wrk sends; the table gives each one's CPU time per request (process time, the audit
writer's thread and its commits included) and node/bare as bare µs / node µs. On a shared
machine this ratio moves by a few points where the wrk one moves by ten or more.

Reading it: answers are cached, so the ratio prices the node's request path (FastAPI's
middleware, the route table, negotiation, cache lookup, headers) against the least a
Python ASGI app can do; 1.0 would mean that path costs nothing. The per-round lines show
the noise: on a shared 2-core machine a single run can move the ratio by 0.1 or more, so
trust a FAIL only when the rounds agree. The open node's audit log is off unless
``--audit`` (each audited read costs its writer thread a few µs: bench_policy.py).
Always exits 0: a report, not a test.

    .venv/bin/python bench/bench_resource.py [--seconds 5] [--rounds 3] [--audit]
    .venv/bin/python bench/bench_resource.py --in-process [--requests 5000] [--rounds 7] [--audit]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PATH = "/id/building/42"
FORMATS = {"Turtle": ("text/turtle", 0.50), "JSON-LD": ("application/ld+json", 0.35)}
#: the authenticated, policy-filtered, audited GET: of its own bare route's rate
AUTH_TARGET = 0.75
FIRM, READER = "EU.EORI.NL000000001", "EU.EORI.NL000000003"
WITHHELD = "dsgo-withheld-fields"
NS = "https://data.bench.example/"
SCALARS = """a bot:Building; rdfs:label "Benchstraat 42"; rdfs:label "Bench Street 42"@en;
dsgo:address "Benchstraat 42, 3511 AA Utrecht"; dsgo:municipalityCode "0344"; dsgo:energyLabel "A++";
dsgo:energyLabelDate "2023-05-17"^^xsd:date; dsgo:energyIndex "0.82"^^xsd:decimal;
dsgo:buildingYear "1972"^^xsd:gYear; dsgo:plannedRenovationYear "2031"^^xsd:gYear; dsgo:rcRoof 3.5;
dsgo:rcFacade 2.1; dsgo:rcFloor 1.4; dsgo:uWindow 1.6;
dsgo:bagPand <https://bag.basisregistraties.overheid.nl/id/pand/0344100000000042>"""


def building_ttl() -> str:
    """Exactly 50 triples about one building: typed literals, IRIs, a few strings."""
    po = SCALARS.split(";")
    bag = "https://bag.basisregistraties.overheid.nl/id/verblijfsobject/0344010000"
    po += [f"dsgo:bagVerblijfsobject <{bag}{i:06d}>" for i in range(12)]
    po += [f"bot:hasStorey <id/building/42/storey/{i}>" for i in range(5)]
    po += [f"bot:hasSpace <id/building/42/space/{i}>" for i in range(9)]
    po += [f"bot:hasElement <id/building/42/element/{i}>" for i in range(50 - len(po))]
    prefixes = {"bot": "https://w3id.org/bot#", "dsgo": "https://vocab.dsgo.example/def#"}
    prefixes |= {"rdfs": "http://www.w3.org/2000/01/rdf-schema#", "xsd": "http://www.w3.org/2001/XMLSchema#"}
    head = f"@base <{NS}> .\n" + "".join(f"@prefix {p}: <{iri}> .\n" for p, iri in prefixes.items())
    return head + "<id/building/42> " + " ;\n    ".join(x.strip() for x in po) + " .\n"


def bare_app() -> object:
    """The baseline (a uvicorn ``--factory``): the node's bytes and headers, by ``Accept``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    saved = json.loads(Path(os.environ["BENCH_ANSWERS"]).read_text())
    answers = {accept: (a["body"].encode(), a["headers"]) for accept, a in saved.items()}

    async def endpoint(request: Request) -> Response:
        body, headers = answers.get(request.headers.get("accept", ""), answers["text/turtle"])
        return Response(body, headers=headers)

    return Starlette(routes=[Route(PATH, endpoint)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(
    cmd: list[str], url: str, log: Path, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.Popen[bytes]:
    """Run ``cmd`` (output to ``log``) until ``url`` answers 200. ``env``: by default this
    environment without ``DSGO_*`` overrides. Shared by the benchmarks that start servers."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSGO_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not answer {url}:\n{log.read_text()}")


def wrk_command(
    url: str, seconds: float, headers: dict[str, str] | None = None, script: Path | None = None
) -> list[str]:
    """``wrk -t1 -c32`` for ``seconds`` (whole, at least 1) against ``url``, with
    ``headers`` and a Lua ``script``. Shared by the benchmarks that load servers."""
    cmd = ["wrk", "-t1", "-c32", f"-d{max(1, round(seconds))}s"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    return cmd + (["-s", str(script)] if script else []) + [url]


def wrk_result(url: str, out: str, problems: list[str]) -> tuple[float, int]:
    """(requests/s, requests) from wrk's output; its errors are added to ``problems``."""
    for problem in re.findall(r"^\s*(Non-2xx.*|Socket errors.*)$", out, re.MULTILINE):
        problems.append(f"{url}: {problem.strip()}")
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    done = re.search(r"^\s*(\d+) requests in", out, re.MULTILINE)
    if rate is None or done is None:
        raise RuntimeError(f"no request counts in wrk's output:\n{out}")
    return float(rate.group(1)), int(done.group(1))


def wrk(url: str, seconds: float, problems: list[str], headers: dict[str, str] | None = None) -> float:
    """One wrk run: requests per second."""
    cmd = wrk_command(url, seconds, headers)
    return wrk_result(url, subprocess.run(cmd, capture_output=True, text=True, check=True).stdout, problems)[
        0
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, all its threads (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Config:
    """One node under test with its own bare route serving that node's bytes."""

    name: str
    node: str = ""
    bare: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)


#: the authenticated node's policy: the building without two of its fields, to anyone
_POLICY = """rules:
  - id: buildings
    effect: permit
    to: {anyone: true}
    resources: {classes: [bot:Building]}
    fields: {all_except: [dsgo:address, dsgo:energyIndex]}
"""


def _node_toml(tmp: Path, name: str, port: int, audit: bool, auth: bool) -> Path:
    folder = tmp / name
    folder.mkdir()
    text = (
        f'[node]\nparty_id = "{FIRM}"\nname = "Bench B.V."\nbase_iri = "{NS}"\n'
        f'host = "127.0.0.1"\nport = {port}\nopen = {"false" if auth else "true"}\n'
        + ("" if audit else "audit = false\n")
        + f'\n[[source]]\nname = "bench"\ntype = "rdf"\npath = "{tmp / "building.ttl"}"\n'
    )
    if auth:
        (folder / "policies").mkdir()
        (folder / "policies" / "policy.yaml").write_text(_POLICY)
        text += (
            f'[keys]\ndir = "{tmp / "keys" / FIRM}"\n[registry]\nurl = "http://127.0.0.1:9"\n'
            f'party_id = "EU.EORI.NL000000000"\nca = ["{tmp / "keys" / "ca" / "root.cert.pem"}"]\n'
            '[policies]\ndir = "policies"\n'
        )
    (folder / "node.toml").write_text(text)
    return folder / "node.toml"


def _token(tmp: Path) -> str:
    from gateway.identity.pki import load_identity, make_ca, make_party
    from gateway.identity.tokens import TokenIssuer

    make_ca(tmp / "keys" / "ca")
    make_party(FIRM, tmp / "keys" / FIRM, tmp / "keys" / "ca", name="Bench B.V.")
    return TokenIssuer(load_identity(tmp / "keys" / FIRM)).issue(READER, time.time())


def _start(tmp: Path, config: Config, audit: bool, procs: list[subprocess.Popen[bytes]]) -> None:
    """The node, its answers read once, and a bare route serving exactly those bytes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSGO_")}
    node_port, bare_port = free_port(), free_port()
    config.node, config.bare = f"http://127.0.0.1:{node_port}", f"http://127.0.0.1:{bare_port}"
    toml = _node_toml(tmp, config.name, node_port, audit, auth=bool(config.headers))
    procs.append(
        start(
            [str(BIN / "dsgo"), "serve", str(toml)], config.node + "/health", tmp / f"{config.name}.log", env
        )
    )
    config.pids["node"] = procs[-1].pid
    answers: dict[str, dict[str, Any]] = {}
    for accept, _ in FORMATS.values():
        answer = httpx.get(
            config.node + PATH, headers={"accept": accept, **config.headers}
        ).raise_for_status()
        answers[accept] = {"body": answer.content.decode(), "headers": same_headers(answer.headers.items())}
        config.sizes[accept] = len(answer.content)
    (tmp / f"{config.name}.json").write_text(json.dumps(answers))
    cmd = [str(BIN / "uvicorn"), "--factory", "bench_resource:bare_app", "--app-dir", str(ROOT / "bench")]
    cmd += ["--host", "127.0.0.1", "--port", str(bare_port), "--log-level", "warning"]
    cmd += ["--no-access-log", "--no-server-header"]  # as `dsgo serve` runs uvicorn
    env |= {"BENCH_ANSWERS": str(tmp / f"{config.name}.json"), "PYTHONDONTWRITEBYTECODE": "1"}
    procs.append(start(cmd, config.bare + PATH, tmp / f"{config.name}-bare.log", env))
    config.pids["bare"] = procs[-1].pid


def same_headers(headers: Any) -> dict[str, str]:
    """What a bare route sends to match its node: every header but those uvicorn and
    Starlette add to any answer (``date``, ``content-length``) or neither sends."""
    return {name.lower(): value for name, value in headers if name.lower() not in ("content-length", "date")}


def run(tmp: Path, seconds: int, rounds: int, procs: list[subprocess.Popen[bytes]], audit: bool) -> None:
    (tmp / "building.ttl").write_text(building_ttl())
    token = _token(tmp)
    configs = [Config("open"), Config("auth", headers={"Authorization": f"Bearer {token}"})]
    for config in configs:
        _start(tmp, config, audit if config.name == "open" else True, procs)
    nt = httpx.get(configs[0].node + PATH, headers={"accept": "application/n-triples"}).text
    if len(nt.strip().splitlines()) != 50:
        raise RuntimeError(f"expected 50 triples, got:\n{nt}")
    problems: list[str] = []
    rps: dict[tuple[str, str, str], list[float]] = {}
    cpu: dict[tuple[str, str, str], list[float]] = {}
    for config in configs:
        for accept, _ in FORMATS.values():
            for url in (config.bare, config.node):  # warm up: connections, caches, branch predictors
                wrk(url + PATH, 1, problems, {"Accept": accept, **config.headers})
    for r in range(rounds):  # alternate which goes first, so drift hits both alike
        for name, (accept, _) in FORMATS.items():
            for config in configs:
                # the bare route gets the very same request (a bearer token too): it prices the
                # least an ASGI app can do for it, so the ratio prices the node's own path
                pair = [("bare", config.bare), ("node", config.node)]
                for who, url in pair[:: 1 if r % 2 == 0 else -1]:
                    before = cpu_seconds(config.pids[who])
                    cmd = wrk_command(url + PATH, seconds, {"Accept": accept, **config.headers})
                    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                    got, done = wrk_result(url, out, problems)
                    used = (cpu_seconds(config.pids[who]) - before) / max(1, done)
                    rps.setdefault((config.name, name, who), []).append(got)
                    cpu.setdefault((config.name, name, who), []).append(used)
                    print(
                        f"round {r + 1}/{rounds} {name:7} {config.name:4} {who}: {got:9.0f} req/s, "
                        f"{used * 1e6:5.1f} µs CPU per request",
                        flush=True,
                    )
    _report(configs, rps, seconds, rounds, audit, problems)
    _report_cpu(configs, cpu)


def _report(
    configs: list[Config],
    rps: dict[tuple[str, str, str], list[float]],
    seconds: int,
    rounds: int,
    audit: bool,
    problems: list[str],
) -> None:
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    print(f"\nnproc {nproc}, wrk -t1 -c32 -d{seconds}s, median of {rounds} rounds, GET {PATH}")
    print(f"open: anonymous, no policy, audit {'on' if audit else 'off'}; auth: bearer token, a policy")
    print("withholding 2 of 50 fields, audit log on. Each against a bare route serving its own bytes.")
    print(f"{'format':8} {'node':5} {'bytes':>6} {'bare req/s':>11} {'node req/s':>11} {'ratio':>6} target")
    ratios: dict[tuple[str, str], float] = {}
    for name, (accept, target) in FORMATS.items():
        for config in configs:
            b = statistics.median(rps[config.name, name, "bare"])
            n = statistics.median(rps[config.name, name, "node"])
            ratios[config.name, name] = n / b
            goal = AUTH_TARGET if config.name == "auth" else target
            verdict = "PASS" if n / b >= goal else "FAIL"
            size = config.sizes[accept]
            line = f"{name:8} {config.name:5} {size:6} {b:11.0f} {n:11.0f} {n / b:6.2f}"
            print(f"{line} >= {goal:.2f} {verdict}")
        gap = ratios["open", name] - ratios["auth", name]
        verdict = "PASS" if gap <= 0.05 else "FAIL"
        print(f"{name:8} authenticated is {gap * 100:+.0f} points below open (target <= 5): {verdict}")
    for problem in problems:
        print(f"wrk saw errors, results are suspect: {problem}")


def _report_cpu(configs: list[Config], cpu: dict[tuple[str, str, str], list[float]]) -> None:
    """The servers' own CPU time per request (their threads included: the audit writer's),
    which the machine's other load moves far less than requests per second."""
    print("\nserver CPU per request (median of the rounds); bare/node is the rate the node would")
    print("reach beside its bare route if CPU alone decided:")
    print(f"{'format':8} {'node':5} {'bare µs':>8} {'node µs':>8} {'bare/node':>9}")
    for name in FORMATS:
        for config in configs:
            b = statistics.median(cpu[config.name, name, "bare"])
            n = statistics.median(cpu[config.name, name, "node"])
            print(f"{name:8} {config.name:5} {b * 1e6:8.1f} {n * 1e6:8.1f} {b / n:9.2f}")


class _Collect(asyncio.Transport):
    """A transport that keeps what is written: the socket, for ``--in-process``."""

    def __init__(self) -> None:
        super().__init__()
        self.written, self.closing = bytearray(), False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Connection:
    """One keep-alive connection into ``app`` through uvicorn's httptools protocol."""

    def __init__(self, app: Any) -> None:
        from uvicorn.config import Config
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
        from uvicorn.server import ServerState

        config = Config(app=app, lifespan="off", access_log=False, server_header=False, log_level="warning")
        config.load()  # the middleware uvicorn.run puts in front (proxy headers), as for dsgo serve
        self.protocol = HttpToolsProtocol(
            config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
        )
        self.transport = _Collect()
        self.protocol.connection_made(self.transport)
        self.answered = asyncio.Event()
        complete = self.protocol.on_response_complete

        def counted() -> None:
            self.answered.set()
            complete()

        self.protocol.on_response_complete = counted  # type: ignore[method-assign]

    async def send(self, request: bytes, times: int) -> bytes:
        """``request`` ``times`` times, one after the other; the last answer's bytes."""
        for _ in range(times):
            self.transport.written.clear()
            self.answered.clear()
            self.protocol.data_received(request)
            await self.answered.wait()
        return bytes(self.transport.written)


async def _lifespan(app: Any) -> Callable[[], Awaitable[None]]:
    """Start ``app`` (ASGI lifespan); returns what stops it."""
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the node did not start: {started}")

    async def stop() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task

    return stop


def _request(accept: str, headers: dict[str, str]) -> bytes:
    """The bytes wrk sends for ``GET PATH`` with these headers."""
    lines = [f"GET {PATH} HTTP/1.1", "Host: 127.0.0.1:8000", f"Accept: {accept}"]
    return ("\r\n".join(lines + [f"{k}: {v}" for k, v in headers.items()]) + "\r\n\r\n").encode()


async def _in_process(tmp: Path, requests: int, rounds: int, audit: bool) -> None:
    from gateway.config import load_node_settings
    from gateway.http.app import create_app

    (tmp / "building.ttl").write_text(building_ttl())
    token = _token(tmp)
    stops, servers = [], {}
    try:
        for name, auth in (("open", False), ("auth", True)):
            toml = _node_toml(tmp, name, free_port(), audit or auth, auth)
            app = create_app(load_node_settings(toml), watch=False)
            stops.append(await _lifespan(app))
            headers = {"Authorization": f"Bearer {token}"} if auth else {}
            node = _Connection(app)
            answers = {}
            for accept, _ in FORMATS.values():
                head, _, body = (await node.send(_request(accept, headers), 1)).partition(b"\r\n\r\n")
                status, *lines = head.decode("latin-1").split("\r\n")
                if not status.startswith("HTTP/1.1 200"):
                    raise RuntimeError(f"{name} node: {status}")
                sent = same_headers(line.split(": ", 1) for line in lines)
                answers[accept] = {"body": body.decode(), "headers": sent}
            (tmp / f"{name}.json").write_text(json.dumps(answers))
            os.environ["BENCH_ANSWERS"] = str(tmp / f"{name}.json")
            servers[name] = (headers, node, _Connection(bare_app()), app.state.dsgo.node.audit)
        cpu: dict[tuple[str, str, str], list[float]] = {}
        for r in range(rounds):
            for fmt, (accept, _) in FORMATS.items():
                for name, (headers, node, bare, log) in servers.items():
                    request = _request(accept, headers)
                    pair = [("bare", bare, None), ("node", node, log)]
                    for who, connection, writer in pair[:: 1 if r % 2 == 0 else -1]:
                        await connection.send(request, max(100, requests // 10))  # warm
                        if writer is not None and not writer.flush(60):
                            raise RuntimeError("the audit log did not keep up")
                        before = time.process_time()
                        await connection.send(request, requests)
                        if writer is not None and not writer.flush(60):  # its commits are its cost
                            raise RuntimeError("the audit log did not keep up")
                        used = (time.process_time() - before) / requests
                        cpu.setdefault((name, fmt, who), []).append(used)
                        print(
                            f"round {r + 1}/{rounds} {fmt:7} {name:4} {who}: {used * 1e6:6.2f} µs", flush=True
                        )
        _report_in_process(cpu, requests, rounds, audit)
    finally:
        for stop in reversed(stops):
            await stop()


def _report_in_process(
    cpu: dict[tuple[str, str, str], list[float]], requests: int, rounds: int, audit: bool
) -> None:
    print(f"\nin process, through uvicorn's httptools protocol: {requests} requests a run, median of")
    print(f"{rounds} rounds, GET {PATH}; open: audit {'on' if audit else 'off'}; auth: bearer token, policy,")
    print("audit on. CPU per request (process time: the audit writer's thread and commits included).")
    print(f"{'format':8} {'node':5} {'bare µs':>8} {'node µs':>8} {'bare/node':>9} target")
    for name, (_, target) in FORMATS.items():
        ratios = {}
        for config in ("open", "auth"):
            b = statistics.median(cpu[config, name, "bare"])
            n = statistics.median(cpu[config, name, "node"])
            ratios[config] = b / n
            goal = AUTH_TARGET if config == "auth" else target
            verdict = "PASS" if b / n >= goal else "FAIL"
            print(f"{name:8} {config:5} {b * 1e6:8.2f} {n * 1e6:8.2f} {b / n:9.2f} >= {goal:.2f} {verdict}")
        gap = ratios["open"] - ratios["auth"]
        verdict = "PASS" if gap <= 0.05 else "FAIL"
        print(f"{name:8} authenticated is {gap * 100:+.0f} points below open (target <= 5): {verdict}")


def stop_all(procs: list[subprocess.Popen[bytes]], sig: int = signal.SIGTERM, grace: float = 5) -> None:
    """Signal every process, give each ``grace`` seconds, then kill what is left."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(sig)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
        proc.kill()  # a no-op if it has exited
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="bare/node alternations per format")
    parser.add_argument(
        "--audit", action="store_true", help="keep the node's audit log on (its cost: bench_policy.py)"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="no sockets, no wrk: uvicorn's protocol in this process"
    )
    parser.add_argument("--requests", type=int, default=5000, help="--in-process: requests per run")
    args = parser.parse_args()
    if args.in_process:
        import uvloop

        with tempfile.TemporaryDirectory(prefix="bench-resource-") as tmp:
            uvloop.run(_in_process(Path(tmp), args.requests, args.rounds, args.audit))
        return 0
    if shutil.which("wrk") is None:
        print("bench_resource: wrk is missing; install it with `apt-get install wrk`", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-resource-") as tmp:
            try:
                run(Path(tmp), args.seconds, args.rounds, procs, args.audit)
            finally:
                stop_all(procs)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
