"""Resource GET throughput: a node on a Virtuoso store against one on its embedded store.

One run starts, on loopback, a private Virtuoso (``tests.servers.virtuoso_server``)
holding the 50-triple building of ``bench_resource.py`` in a named graph, and three
open nodes (``dsgo serve``, one uvicorn worker each, no tokens, no policy) serving it:

- ``embedded``: the building read from a Turtle file into the node's own store;
- ``virtuoso``: the same building read live from Virtuoso with the default
  ``cache_ttl`` (2 s): a representation is rendered from Virtuoso at most once per 2 s
  window, every other request is a cache hit;
- ``virtuoso, cache_ttl = 0``: every request reads Virtuoso (one SPARQL SELECT for a
  resource without blank nodes), the price of not caching at all.

All three must answer the same 50 triples before anything is measured. ``wrk -t1 -c32``
loads ``GET /id/building/42`` (Turtle) on each, alternating the order over several
rounds; the table shows the median requests/s, the ratio to ``embedded``, and the CPU
time the node and Virtuoso spent per request (Linux ``/proc``), which says where an
uncached read goes. A last line times the describe query alone, from Python straight to
Virtuoso. No target: a report, not a test; always exits 0 once measured.

    .venv/bin/python bench/bench_virtuoso.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyoxigraph as ox

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_resource import NS, PATH, building_ttl, cpu_seconds, start, stop_all, wrk  # noqa: E402

from gateway.store.remote import RemoteStore  # noqa: E402
from tests.servers import Virtuoso, free_port, virtuoso_server  # noqa: E402

GRAPH = "urn:dsgo:bench"
ACCEPT = "text/turtle"


def node_toml(folder: Path, name: str, port: int, source: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        f'[node]\nparty_id = "EU.EORI.NL000000001"\nname = "Bench B.V."\nbase_iri = "{NS}"\n'
        f'host = "127.0.0.1"\nport = {port}\nopen = true\naudit = false\n\n{source}'
    )
    return path


def triples(url: str) -> set[str]:
    answer = httpx.get(url + PATH, headers={"accept": "application/n-triples"}, timeout=10)
    answer.raise_for_status()
    return set(answer.text.strip().splitlines())


def load(virtuoso: Virtuoso, turtle: str) -> None:
    data = ox.serialize(ox.parse(turtle, ox.RdfFormat.TURTLE), format=ox.RdfFormat.N_TRIPLES)
    assert data is not None
    virtuoso.update(f"INSERT DATA {{ GRAPH <{GRAPH}> {{\n{data.decode()}}} }}")


def query_ms(endpoint: str, n: int = 500) -> float:
    """Mean milliseconds of ``RemoteStore.describe`` of the building, from this process."""
    store = RemoteStore(endpoint, GRAPH)
    try:
        store.describe(NS + PATH.lstrip("/"))
        started = time.perf_counter()
        for _ in range(n):
            store.describe(NS + PATH.lstrip("/"))
        return (time.perf_counter() - started) * 1000 / n
    finally:
        store.close()


def run(
    tmp: Path, virtuoso: Virtuoso, seconds: int, rounds: int, procs: list[subprocess.Popen[bytes]]
) -> None:
    turtle = building_ttl()
    (tmp / "building.ttl").write_text(turtle)
    load(virtuoso, turtle)
    remote = (
        f'[[source]]\nname = "bench"\ntype = "sparql"\nendpoint = "{virtuoso.endpoint}"\ngraph = "{GRAPH}"\n'
    )
    sources = {
        "embedded": '[[source]]\nname = "bench"\ntype = "rdf"\npath = "building.ttl"\n',
        "virtuoso": remote,
        "virtuoso, cache_ttl = 0": remote + "cache_ttl = 0\n",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSGO_")}
    urls: dict[str, str] = {}
    pids: dict[str, int] = {}
    for i, (name, source) in enumerate(sources.items()):
        port = free_port()
        urls[name] = f"http://127.0.0.1:{port}"
        toml = node_toml(tmp, f"node{i}", port, source)
        procs.append(
            start([str(BIN / "dsgo"), "serve", str(toml)], urls[name] + "/health", tmp / f"node{i}.log", env)
        )
        pids[name] = procs[-1].pid
    reference = triples(urls["embedded"])
    if len(reference) != 50:
        raise RuntimeError(f"expected 50 triples, got {len(reference)}")
    for name, url in urls.items():
        if triples(url) != reference:
            raise RuntimeError(f"{name} does not serve the embedded node's 50 triples")

    problems: list[str] = []
    for url in urls.values():  # warm up: connections, caches
        wrk(url + PATH, 1, problems, {"Accept": ACCEPT})
    rps: dict[str, list[float]] = {name: [] for name in urls}
    cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in urls}  # ms per request
    for r in range(rounds):  # rotate which goes first, so drift hits all alike
        order = list(urls.items())
        order = order[r % len(order) :] + order[: r % len(order)]
        for name, url in order:
            node0, store0 = cpu_seconds(pids[name]), cpu_seconds(virtuoso.pid)
            rps[name].append(wrk(url + PATH, seconds, problems, {"Accept": ACCEPT}))
            done = rps[name][-1] * seconds / 1000
            node1, store1 = cpu_seconds(pids[name]), cpu_seconds(virtuoso.pid)
            cpu[name].append(((node1 - node0) / done, (store1 - store0) / done))
            print(f"round {r + 1}/{rounds} {name:24} {rps[name][-1]:9.0f} req/s", flush=True)

    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    print(f"\nnproc {nproc}, wrk -t1 -c32 -d{seconds}s, median of {rounds} rounds, GET {PATH} ({ACCEPT})")
    base = statistics.median(rps["embedded"])
    print(
        f"{'store':24} {'req/s':>9} {'vs embedded':>12} {'node CPU ms/req':>16} {'Virtuoso CPU ms/req':>20}"
    )
    for name in urls:
        median = statistics.median(rps[name])
        node_ms = statistics.median(c[0] for c in cpu[name])
        store_ms = statistics.median(c[1] for c in cpu[name])
        print(f"{name:24} {median:9.0f} {median / base:12.2f} {node_ms:16.3f} {store_ms:20.3f}")
    floor = query_ms(virtuoso.endpoint)
    print(f"one describe straight to Virtuoso (a SELECT over HTTP, from Python): {floor:.2f} ms")
    for problem in problems:
        print(f"wrk saw errors, results are suspect: {problem}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the three nodes")
    args = parser.parse_args()
    for tool in ("wrk", "virtuoso-t", "isql-vt"):
        if shutil.which(tool) is None:
            print(
                f"bench_virtuoso: {tool} is missing (apt-get install wrk virtuoso-opensource)",
                file=sys.stderr,
            )
            return 1
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with virtuoso_server() as virtuoso, tempfile.TemporaryDirectory(prefix="bench-virtuoso-") as tmp:
            try:
                run(Path(tmp), virtuoso, args.seconds, args.rounds, procs)
            finally:
                stop_all(procs)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
