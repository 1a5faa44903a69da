"""How close does a node come to a bare Starlette app when serving one resource?

Starts, on loopback, a real node (``dsgo serve``, one uvicorn worker, open: no tokens)
whose data is one building with 50 triples, and a bare Starlette app (``uvicorn``, one
worker) that answers the node's exact Turtle and JSON-LD bytes, content-type, ETag and
Vary from memory. ``wrk -t1 -c32`` loads ``GET /id/building/42`` on each, alternating
bare and node runs for several rounds, and the table shows the median requests/s of
each, node/bare and the target (Turtle >= 0.50, JSON-LD >= 0.35).

Reading it: answers are cached, so the ratio prices the node's request path (FastAPI's
middleware, the route table, negotiation, cache lookup, headers) against the least a
Python ASGI app can do; 1.0 would mean that path costs nothing. The per-round lines show
the noise: on a shared 2-core machine a single run can move the ratio by 0.1 or more, so
trust a FAIL only when the rounds agree. The node's audit log is off unless ``--audit``:
its cost is the policy benchmark's business (``bench_policy.py``). Always exits 0: a
report, not a test.

    .venv/bin/python bench/bench_resource.py [--seconds 5] [--rounds 3] [--audit]
"""

from __future__ import annotations

import argparse
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
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PATH = "/id/building/42"
FORMATS = {"Turtle": ("text/turtle", 0.50), "JSON-LD": ("application/ld+json", 0.35)}
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


def run(tmp: Path, seconds: int, rounds: int, procs: list[subprocess.Popen[bytes]], audit: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSGO_")}
    env["DSGO_NODE_OPEN"] = "true"  # no identity layer: anyone may read (ignored where unknown)
    node_port, bare_port = free_port(), free_port()
    node, bare = f"http://127.0.0.1:{node_port}", f"http://127.0.0.1:{bare_port}"
    (tmp / "building.ttl").write_text(building_ttl())
    (tmp / "node.toml").write_text(
        f'[node]\nparty_id = "EU.EORI.NL000000001"\nname = "Bench B.V."\nbase_iri = "{NS}"\n'
        f'host = "127.0.0.1"\nport = {node_port}\n'
        + ("" if audit else "audit = false\n")
        + '\n[[source]]\nname = "bench"\ntype = "rdf"\n'
        'path = "building.ttl"\n'
    )
    serve = [str(BIN / "dsgo"), "serve", str(tmp / "node.toml")]
    procs.append(start(serve, node + "/health", tmp / "node.log", env))
    nt = httpx.get(node + PATH, headers={"accept": "application/n-triples"}).text
    if len(nt.strip().splitlines()) != 50:
        raise RuntimeError(f"expected 50 triples, got:\n{nt}")
    answers: dict[str, dict[str, Any]] = {}
    for accept, _ in FORMATS.values():
        answer = httpx.get(node + PATH, headers={"accept": accept}).raise_for_status()
        headers = {h: answer.headers[h] for h in ("content-type", "etag", "vary")}
        answers[accept] = {"body": answer.content.decode(), "headers": headers}
    (tmp / "answers.json").write_text(json.dumps(answers))
    cmd = [str(BIN / "uvicorn"), "--factory", "bench_resource:bare_app", "--app-dir", str(ROOT / "bench")]
    cmd += ["--host", "127.0.0.1", "--port", str(bare_port), "--log-level", "warning"]
    cmd += ["--no-access-log", "--no-server-header"]  # as `dsgo serve` runs uvicorn
    env |= {"BENCH_ANSWERS": str(tmp / "answers.json"), "PYTHONDONTWRITEBYTECODE": "1"}
    procs.append(start(cmd, bare + PATH, tmp / "bare.log", env))

    problems: list[str] = []
    rps: dict[tuple[str, str], list[float]] = {}
    for accept, _ in FORMATS.values():
        for url in (bare, node):  # warm up: connections, caches, branch predictors
            wrk(url + PATH, 1, problems, {"Accept": accept})
    for r in range(rounds):  # alternate which goes first, so drift hits both alike
        for name, (accept, _) in FORMATS.items():
            for who, url in [("bare", bare), ("node", node)][:: 1 if r % 2 == 0 else -1]:
                rps.setdefault((name, who), []).append(wrk(url + PATH, seconds, problems, {"Accept": accept}))
                print(f"round {r + 1}/{rounds} {name:7} {who}: {rps[name, who][-1]:9.0f} req/s", flush=True)

    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    print(f"\nnproc {nproc}, wrk -t1 -c32 -d{seconds}s, median of {rounds} rounds, GET {PATH}")
    print(f"{'format':8} {'bytes':>6} {'bare req/s':>11} {'node req/s':>11} {'ratio':>6} {'target':>7}")
    for name, (accept, target) in FORMATS.items():
        b, n = statistics.median(rps[name, "bare"]), statistics.median(rps[name, "node"])
        size = len(answers[accept]["body"].encode())
        verdict = "PASS" if n / b >= target else "FAIL"
        print(f"{name:8} {size:6} {b:11.0f} {n:11.0f} {n / b:6.2f} {'>= ':>3}{target:.2f} {verdict}")
    for problem in problems:
        print(f"wrk saw errors, results are suspect: {problem}")


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
    args = parser.parse_args()
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
