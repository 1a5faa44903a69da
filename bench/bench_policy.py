"""What do field-level policies cost a node?

(a) Resource GET through the policy filter (20 rules) with the audit log on, against the
    same route with an allow-all policy and no audit, and (to tell the two costs apart)
    with the 20 rules and no audit. All nodes authenticate (a bearer token checked on
    every request) and hold the same 2,000 buildings; each request asks for the next
    building, so once warm every answer comes from the representation cache but still
    pays token check, grant lookup, cache lookup and the audit record. *Cold* is the
    first pass over all buildings: each answer decided (describe, rules, conditions)
    and rendered. Measured twice:
    - in process: a plain ASGI call loop, no sockets, so each read costs about a quarter
      of what it does behind a server and the same microseconds of audit weigh four
      times as much. The configurations take turns, 200 reads at a time, so a shared
      machine's drift hits all alike; the audit writer thread's CPU time is charged to
      the audited configuration as if it ran on the same core, and each round ends with
      a flush of the log inside its time. A ratio is the median over the rounds.
    - when ``wrk`` is installed, the node's real throughput: ``dsgo serve`` (one uvicorn
      worker each) for all three at once, pinned to one CPU, under ``wrk -t1 -c32``
      each, pinned to the other, cycling through the paths. Throughput is requests per
      second of CPU each server used (all its threads, the audit writer's too).
    Target: policy and audit together cost at most 15 % of warm throughput.
SPARQL over a party's view of 1 million triples, and what the views cost in memory and
after a change, is ``bench_views.py``'s (its data is ``big_dataset`` here).

Always exits 0: a report, not a test.

    .venv/bin/python bench/bench_policy.py [--buildings 2000] [--seconds 2] [--rounds 9] [--no-wrk]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pyoxigraph as ox  # noqa: E402
from bench_resource import cpu_seconds, start, stop_all, wrk_command, wrk_result  # noqa: E402

from gateway.audit import DROPPED_PATH, verify  # noqa: E402

NS = "https://data.bench.example/"
FIRM, MUNI, CORP = "EU.EORI.NL000000001", "EU.EORI.NL000000003", "EU.EORI.NL000000002"
BOT, DSGO, PROPS = "https://w3id.org/bot#", "https://vocab.dsgo.example/def#", "https://w3id.org/props#"
RDFS, XSD = "http://www.w3.org/2000/01/rdf-schema#", "http://www.w3.org/2001/XMLSchema#"
QUDT = "http://qudt.org/schema/qudt/"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
WARM_TARGET = 0.85

#: 20 rules: 9 apply to the municipality (by party, role or anyone; two are not in force),
#: 11 to others. Conditions reach up to three links back (element -> space -> storey ->
#: building) as a municipality's "elements of buildings in my municipality" would.
POLICY = f"""
rules:
  - id: muni-buildings
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources:
      classes: [bot:Building]
      where: [{{property: dsgo:municipalityCode, equals: "0363"}}]
    fields: [rdfs:label, dsgo:energyLabel, dsgo:buildingYear, bot:hasStorey, dsgo:floorArea, dsgo:bagPand]
    purpose: energy transition monitoring
  - id: muni-storeys
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources:
      classes: [bot:Storey]
      where: [{{via: ["^bot:hasStorey"], property: dsgo:municipalityCode, equals: "0363"}}]
    fields: all
    purpose: energy transition monitoring
  - id: muni-spaces
    effect: permit
    to: {{roles: [Municipality]}}
    resources:
      classes: [bot:Space]
      where: [{{via: ["^bot:hasSpace", "^bot:hasStorey"], property: dsgo:municipalityCode, equals: "0363"}}]
    fields: {{all_except: [props:occupant]}}
  - id: muni-elements
    effect: permit
    to: {{parties: [{MUNI}]}}
    resources:
      classes: [bot:Element]
      where:
        - via: ["^bot:containsElement", "^bot:hasSpace", "^bot:hasStorey"]
          property: dsgo:municipalityCode
          equals: "0363"
    fields: [rdfs:label, dsgo:uValue, props:material, props:area]
  - id: labels-for-all
    effect: permit
    to: {{anyone: true}}
    resources: {{classes: [bot:Building]}}
    fields: [rdfs:label]
  - id: no-costs
    effect: deny
    to: {{anyone: true}}
    resources: all
    fields: [props:constructionCost]
  - id: no-address-of-g
    effect: deny
    to: {{anyone: true}}
    resources:
      classes: [bot:Building]
      where: [{{property: dsgo:energyLabel, equals: "G"}}]
    fields: [dsgo:address]
  - id: old-pilot
    effect: permit
    to: {{anyone: true}}
    resources: all
    fields: all
    valid: {{until: 2020-01-01}}
  - id: next-pilot
    effect: permit
    to: {{anyone: true}}
    resources: all
    fields: all
    valid: {{from: 2090-01-01}}
""" + "".join(
    f"""  - id: corp-{i}
    effect: {"deny" if i % 4 == 3 else "permit"}
    to: {{parties: [EU.EORI.NL00000010{i}]}}
    resources:
      classes: [{["bot:Building", "bot:Storey", "bot:Space", "bot:Element"][i % 4]}]
      where: [{{property: dsgo:buildingYear, before: {1950 + 5 * i}}}]
    fields: {{all_except: [dsgo:address]}}
"""
    for i in range(11)
)

ALLOW_ALL = """
rules:
  - id: share-all
    effect: permit
    to: {anyone: true}
    resources: all
    fields: all
"""


# -- data --------------------------------------------------------------------------------


def _n(iri: str) -> ox.NamedNode:
    return ox.NamedNode(iri)


def _lit(value: object, datatype: str | None = None) -> ox.Literal:
    return ox.Literal(str(value), datatype=_n(XSD + datatype)) if datatype else ox.Literal(str(value))


T, TYPE = ox.Triple, _n(RDF_TYPE)


def building(b: int, municipality: str) -> Iterator[ox.Triple]:
    """About 20 triples: scalars, a blank node with two values, a BAG link, and costs."""
    s = _n(f"{NS}id/building/{b}")
    year = 1930 + b % 90
    yield from (
        T(s, TYPE, _n(BOT + "Building")),
        T(s, _n(RDFS + "label"), _lit(f"Benchstraat {b}")),
        T(s, _n(RDFS + "label"), ox.Literal(f"Bench Street {b}", language="en")),
        T(s, _n(DSGO + "address"), _lit(f"Benchstraat {b}, 3511 AA Utrecht")),
        T(s, _n(DSGO + "municipalityCode"), _lit(municipality)),
        T(s, _n(DSGO + "energyLabel"), _lit("ABCDEFG"[b % 7])),
        T(s, _n(DSGO + "energyIndex"), _lit(f"{0.5 + (b % 50) / 100:.2f}", "decimal")),
        T(s, _n(DSGO + "buildingYear"), _lit(year, "gYear")),
        T(s, _n(DSGO + "rcRoof"), _lit(f"{1 + b % 5}.5", "decimal")),
        T(s, _n(DSGO + "rcFacade"), _lit(f"{1 + b % 3}.1", "decimal")),
        T(s, _n(DSGO + "uWindow"), _lit("1.6", "decimal")),
        T(s, _n(DSGO + "bagPand"), _n(f"https://bag.example/pand/{b:016d}")),
        T(s, _n(PROPS + "constructionCost"), _lit(200_000 + b, "integer")),
    )
    area = ox.BlankNode(f"area{b}")
    yield T(s, _n(DSGO + "floorArea"), area)
    yield T(area, _n(QUDT + "numericValue"), _lit(f"{80 + b % 40}.5", "decimal"))
    yield T(area, _n(QUDT + "unit"), _n("http://qudt.org/vocab/unit/M2"))


def small_dataset(buildings: int) -> list[ox.Triple]:
    """(a): buildings only, all in the municipality, so every one is visible (in part)."""
    return [t for b in range(buildings) for t in building(b, "0363")]


def big_dataset(target: int) -> list[ox.Triple]:
    """(b, c): buildings -> 4 storeys -> 10 spaces -> 5 elements, until ``target`` triples;
    half the buildings are in the municipality."""
    out: list[ox.Triple] = []
    b = 0
    while len(out) < target:
        out.extend(building(b, "0363" if b % 2 == 0 else "0344"))
        bi = _n(f"{NS}id/building/{b}")
        for s in range(4):
            si = _n(f"{NS}id/building/{b}/storey/{s}")
            out += [
                T(bi, _n(BOT + "hasStorey"), si),
                T(si, TYPE, _n(BOT + "Storey")),
                T(si, _n(RDFS + "label"), _lit(f"Storey {s}")),
                T(si, _n(DSGO + "elevation"), _lit(3 * s, "integer")),
            ]
            for sp in range(10):
                spi = _n(f"{NS}id/building/{b}/space/{s}-{sp}")
                out += [
                    T(si, _n(BOT + "hasSpace"), spi),
                    T(spi, TYPE, _n(BOT + "Space")),
                    T(spi, _n(RDFS + "label"), _lit(f"Space {s}.{sp}")),
                    T(spi, _n(PROPS + "area"), _lit(f"{10 + sp}.25", "decimal")),
                    T(spi, _n(PROPS + "occupant"), _lit(f"Household {b}-{s}-{sp}")),
                ]
                for e in range(5):
                    ei = _n(f"{NS}id/building/{b}/element/{s}-{sp}-{e}")
                    out += [
                        T(spi, _n(BOT + "containsElement"), ei),
                        T(ei, TYPE, _n(BOT + "Element")),
                        T(ei, _n(RDFS + "label"), _lit(f"Wall {s}.{sp}.{e}")),
                        T(ei, _n(DSGO + "uValue"), _lit(f"0.{10 + (b + e) % 80}", "decimal")),
                        T(ei, _n(PROPS + "material"), _lit(["brick", "concrete", "timber"][e % 3])),
                        T(ei, _n(PROPS + "area"), _lit(f"{4 + e}.5", "decimal")),
                        T(ei, _n(PROPS + "ifcGuid"), _lit(f"3vB2YO${b:05d}{s}{sp}{e}")),
                    ]
        b += 1
    return out


# -- measuring ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- (a) resource GET ---------------------------------------------------------------------


#: the configurations of (a): name -> (label, policy, audit log kept)
CONFIGS = {
    "allow": ("allow-all, no audit", ALLOW_ALL, False),
    "rules": ("20 rules, no audit", POLICY, False),
    "policy": ("20 rules + audit", POLICY, True),
}


def make_nodes(tmp: Path, buildings: int) -> dict[str, Path]:
    """Keys, the data file and a node TOML per configuration, all on the same data."""
    from gateway.identity.pki import make_ca, make_party

    make_ca(tmp / "ca")
    make_party(FIRM, tmp / "firm", tmp / "ca", name="Bench B.V.")
    data = tmp / "buildings.nt"
    data.write_bytes(ox.serialize(small_dataset(buildings), format=ox.RdfFormat.N_TRIPLES) or b"")
    tomls = {}
    for name, (_, policy, audit) in CONFIGS.items():
        log = '"state/audit.sqlite"' if audit else "false"
        folder = tmp / name
        (folder / "policies").mkdir(parents=True)
        (folder / "policies" / "policy.yaml").write_text(policy)
        toml = folder / "node.toml"
        toml.write_text(
            f'[node]\nparty_id = "{FIRM}"\nname = "Bench B.V."\nbase_iri = "{NS}"\nhost = "127.0.0.1"\n'
            f"port = {free_port()}\naudit = {log}\n\n"
            f'[[source]]\nname = "bench"\ntype = "rdf"\npath = "{data}"\n\n'
            f'[keys]\ndir = "{tmp / "firm"}"\n'
            f'[registry]\nurl = "http://127.0.0.1:9"\nparty_id = "EU.EORI.NL000000000"\n'
            f'ca = ["{tmp / "ca" / "root.cert.pem"}"]\n'
            '[policies]\ndir = "policies"\n'
        )
        tomls[name] = toml
    return tomls


def token_for(tmp: Path) -> str:
    from gateway.identity.pki import load_identity
    from gateway.identity.tokens import TokenIssuer

    return TokenIssuer(load_identity(tmp / "firm")).issue(MUNI, time.time(), ("Municipality",))


def paired(runs: list[float], baseline: list[float]) -> float:
    """The median ratio of runs made side by side: a shared machine's drift cancels out."""
    return statistics.median(a / b for a, b in zip(runs, baseline, strict=True))


def report(title: str, cold: dict[str, float], warm: dict[str, list[float]], notes: list[str]) -> None:
    print(f"\n(a) {title}")
    print(f"    {'':26}" + "".join(f"{CONFIGS[n][0]:>21}" for n in CONFIGS))
    print(f"    {'cold (first pass), r/s':26}" + "".join(f"{cold[n]:21.0f}" for n in CONFIGS))
    median = {n: statistics.median(warm[n]) for n in CONFIGS}
    print(f"    {'warm (cached, median), r/s':26}" + "".join(f"{median[n]:21.0f}" for n in CONFIGS))
    ratio = {n: paired(warm[n], warm["allow"]) for n in CONFIGS}
    print(f"    {'warm, of allow-all (paired)':26}" + "".join(f"{ratio[n]:21.2f}" for n in CONFIGS))
    verdict = "PASS" if ratio["policy"] >= WARM_TARGET else "FAIL"
    cost = 1 - ratio["policy"]
    print(
        f"    policy and audit cost {cost:.0%} of warm throughput "
        f"(target <= {1 - WARM_TARGET:.0%}): {verdict}"
    )
    for note in notes:
        print(f"    {note}")


def get_scope(path: str, headers: list[tuple[bytes, bytes]], query: bytes = b"") -> dict[str, Any]:
    """The ASGI scope of a GET of ``path`` (and ``query``) from loopback: for driving an
    app in process, without sockets. Shared by the benchmarks that do."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _asgi_get(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    scope = get_scope(path, headers)
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _in_process(
    tomls: dict[str, Path], token: str, buildings: int, seconds: float, rounds: int
) -> None:
    """The configurations take turns, 200 reads at a time, so whatever else the machine
    does slows them alike. The audit log's cost is charged in full: its writer thread's
    CPU time is added to the audited configuration's time as if it ran on the same core
    (it runs on the other), and each round ends with a flush inside that time."""
    from gateway.config import load_node_settings
    from gateway.http.app import create_app

    paths = [f"/id/building/{b}" for b in range(buildings)]
    headers = [(b"authorization", f"Bearer {token}".encode()), (b"accept", b"text/turtle")]
    apps = {name: create_app(load_node_settings(toml, {}), watch=False) for name, toml in tomls.items()}
    async with contextlib.AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        cold: dict[str, float] = {}
        for name, app in apps.items():  # the first pass: every answer decided and rendered
            started = time.perf_counter()
            for path in paths:
                status = await _asgi_get(app, path, headers)
                if status != 200:
                    raise RuntimeError(f"{name} {path}: {status}")
            if app.state.dsgo.audit is not None:
                app.state.dsgo.audit.flush(60)
            cold[name] = len(paths) / (time.perf_counter() - started)
        log = apps["policy"].state.dsgo.audit
        writer = log._thread  # private, but the bench charges its CPU time to the audit
        assert writer is not None and writer.ident is not None
        writer_clock = time.pthread_getcpuclockid(writer.ident)
        warm: dict[str, list[float]] = {name: [] for name in apps}
        index = dict.fromkeys(apps, 0)
        for r in range(rounds):
            spent, done = dict.fromkeys(apps, 0.0), dict.fromkeys(apps, 0)
            writer_cpu = time.clock_gettime(writer_clock)
            until = time.perf_counter() + seconds * len(apps)
            while time.perf_counter() < until:
                for name, app in apps.items():  # 200 reads each, in turn: drift hits all alike
                    i, started = index[name], time.perf_counter()
                    for _ in range(200):
                        await _asgi_get(app, paths[i], headers)
                        i = (i + 1) % len(paths)
                    spent[name] += time.perf_counter() - started
                    done[name] += 200
                    index[name] = i
            started = time.perf_counter()
            log.flush(60)  # what the writer has not done yet is paid for by this round
            spent["policy"] += time.perf_counter() - started
            spent["policy"] += time.clock_gettime(writer_clock) - writer_cpu  # as if on the same core
            for name in apps:
                warm[name].append(done[name] / spent[name])
            print(
                f"  round {r + 1}/{rounds} in process: "
                + ", ".join(f"{name} {warm[name][-1]:6.0f} req/s" for name in apps),
                flush=True,
            )
        status = apps["policy"].state.dsgo.audit.status()
    report(
        f"resource GET, {buildings} distinct buildings, Turtle, in process (ASGI call loop, "
        "configurations in turns of 200 reads, the audit writer's CPU time charged to its own)",
        cold,
        warm,
        [f"audit log: {status.written} entries written, {status.dropped} dropped"],
    )


_LUA = """
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/id/building/" .. (n % {count}),
    {{["Authorization"] = "Bearer {token}", ["Accept"] = "text/turtle"}})
end
"""


def pin(cpu: int) -> list[str]:
    """Run on CPU ``cpu`` alone (``taskset``), when there are two: the servers on one, wrk on
    the other, so none is moved around and each audit writer shares its server's CPU."""
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) >= 2 else []


def _with_wrk(
    tmp: Path, tomls: dict[str, Path], token: str, buildings: int, seconds: float, rounds: int
) -> None:
    """Real servers under load *at the same time*: all three on one CPU, their three wrk
    on the other. Whatever else the machine is doing then slows all three alike, so the
    ratios hold where one-at-a-time runs on this shared machine drift by 30 %. Each
    server's throughput is the requests it answered per second of CPU it used (all its
    threads, the audit writer's too, from /proc): what one core running it would serve."""
    import httpx

    procs: list[subprocess.Popen[bytes]] = []
    try:
        urls = {}
        for name, toml in tomls.items():
            port = int(re.search(r"port = (\d+)", toml.read_text()).group(1))  # type: ignore[union-attr]
            urls[name] = f"http://127.0.0.1:{port}"
            serve = [*pin(0), str(BIN / "dsgo"), "serve", str(toml)]
            procs.append(start(serve, urls[name] + "/health", tmp / f"{name}.log", timeout=60))
        pids = dict(zip(urls, (proc.pid for proc in procs), strict=True))
        script = tmp / "paths.lua"
        script.write_text(_LUA.format(token=token, count=buildings))
        problems: list[str] = []
        cold = {}
        for name, url in urls.items():  # cold: one pass over every building, one client
            with httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}) as client:
                started = time.perf_counter()
                for b in range(buildings):
                    client.get(f"/id/building/{b}", headers={"accept": "text/turtle"}).raise_for_status()
                cold[name] = buildings / (time.perf_counter() - started)
        warm: dict[str, list[float]] = {name: [] for name in urls}
        for r in range(-1, rounds):  # round -1 warms up
            used = {name: cpu_seconds(pid) for name, pid in pids.items()}
            runs = {
                name: subprocess.Popen(
                    [*pin(1), *wrk_command(url, seconds, script=script)], stdout=subprocess.PIPE, text=True
                )
                for name, url in urls.items()
            }
            done = {
                name: wrk_result(urls[name], run.communicate()[0], problems)[1] for name, run in runs.items()
            }
            used = {name: cpu_seconds(pids[name]) - used[name] for name in urls}
            if r < 0:
                continue
            for name in urls:
                warm[name].append(done[name] / used[name])
            print(
                f"  round {r + 1}/{rounds} wrk: "
                + ", ".join(
                    f"{name} {warm[name][-1]:6.0f} req/CPU-s ({used[name]:.1f} s CPU)" for name in urls
                ),
                flush=True,
            )
    finally:
        stop_all(procs, signal.SIGINT, 30)  # SIGINT: the audit writer flushes its backlog
    notes = [f"wrk saw errors, results are suspect: {p}" for p in problems]
    log = tomls["policy"].parent / "state" / "audit.sqlite"
    with contextlib.closing(sqlite3.connect(log)) as db:
        written, lost = db.execute(
            "SELECT SUM(path != ?), COALESCE(SUM(CASE WHEN path = ? THEN withheld END), 0) FROM entries",
            (DROPPED_PATH, DROPPED_PATH),
        ).fetchone()
    notes.append(f"audit log: {written} reads recorded, {lost} not (queue full), chain ok: {verify(log).ok}")
    report(
        f"resource GET, {buildings} distinct buildings, Turtle, dsgo serve (1 worker each, all three "
        f"at once) + wrk -t1 -c32 -d{max(1, round(seconds))}s each; warm = requests per CPU-second",
        cold,
        warm,
        notes,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--buildings", type=int, default=2000, help="(a): distinct resources")
    parser.add_argument("--seconds", type=float, default=2, help="(a): length of each timed run")
    parser.add_argument("--rounds", type=int, default=9, help="(a): alternations per configuration")
    parser.add_argument("--no-wrk", action="store_true", help="(a): in process only")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"nproc {os.cpu_count()}, Python {sys.version.split()[0]}, pyoxigraph {ox.__version__}")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-policy-") as name:
            tmp = Path(name)
            tomls = make_nodes(tmp, args.buildings)
            token = token_for(tmp)
            asyncio.run(_in_process(tomls, token, args.buildings, args.seconds, args.rounds))
            if args.no_wrk or shutil.which("wrk") is None:
                print("    (wrk run skipped" + ("" if args.no_wrk else ": install wrk") + ")")
            else:
                _with_wrk(tmp, tomls, token, args.buildings, args.seconds, args.rounds)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
