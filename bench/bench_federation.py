"""Federated query cost: link traversal across three real nodes vs a naive walk.

Three `dsgo serve` processes and a registry on loopback. About 1,000 resources are
spread over them as chains: a building model at the construction firm links to a home
at the housing corporation, which links to a BAG object at the municipality. The
municipality asks its own node one question that touches all of them, starting from the
firm's building collection. In the same run, a naive traversal follows the same links
with one GET per IRI, one at a time (reusing its connection and token, as a fair client
would). Printed: wall time and HTTP requests of both, their ratios (targets: >= 10x
fewer requests, >= 5x less wall time), and how requests grow with the number of
buildings (they should follow nodes and hops, not buildings).

    .venv/bin/python bench/bench_federation.py [--chains 334] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import pyoxigraph as ox

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.identity.assertions import ASSERTION_TYPE, make_assertion  # noqa: E402
from gateway.identity.pki import load_identity, make_ca, make_party  # noqa: E402
from tests.servers import DSGO, free_port, process  # noqa: E402

REGISTRY, FIRM, CORP, MUNI = (f"EU.EORI.NL00000090{i}" for i in range(4))
NS = {
    FIRM: "https://data.firm.example/",
    CORP: "https://data.corp.example/",
    MUNI: "https://data.muni.example/",
}
QUERY = """
SELECT ?model ?label ?code WHERE {
  ?model dsgo:home ?home . ?home dsgo:energyLabel ?label ; dsgo:bagPand ?pand .
  ?pand dsgo:municipalityCode ?code
}"""
V = "https://vocab.dsgo.example/def#"
FOLLOW = {V + "home", V + "bagPand"}
POLICY = "rules:\n  - {id: all, effect: permit, to: {anyone: true}, resources: all, fields: all}\n"


def write(folder: Path, chains: int) -> tuple[Path, dict[str, Path], dict[str, str]]:
    keys = folder / "keys"
    make_ca(keys / "ca")
    for party in (REGISTRY, FIRM, CORP, MUNI):
        make_party(party, keys / party, keys / "ca")
    urls = {p: f"http://127.0.0.1:{free_port()}" for p in (REGISTRY, FIRM, CORP, MUNI)}
    data = {
        FIRM: "".join(
            f"<id/model/{i}> a <https://w3id.org/bot#Building> ; <{V}home> <{NS[CORP]}id/home/{i}> ;"
            f" <{V}rcRoof> {i % 7}.5 .\n"
            for i in range(chains)
        ),
        CORP: "".join(
            f'<id/home/{i}> <{V}energyLabel> "{"ABCDEFG"[i % 7]}" ; <{V}bagPand> <{NS[MUNI]}id/pand/{i}> .\n'
            for i in range(chains)
        ),
        MUNI: "".join(f'<id/pand/{i}> <{V}municipalityCode> "0363" .\n' for i in range(chains)),
    }
    registry = [f'[registry]\nparty_id = "{REGISTRY}"\nport = {urls[REGISTRY].rsplit(":", 1)[1]}']
    registry.append(f'keys = "keys/{REGISTRY}"\ntrusted = ["keys/ca/root.cert.pem"]\n')
    configs = {}
    for party in (FIRM, CORP, MUNI):
        registry.append(
            f'[[party]]\nid = "{party}"\ncertificates = ["keys/{party}/chain.pem"]\n'
            f'namespaces = ["{NS[party]}"]\nendpoint = "{urls[party]}"\n'
        )
        home = folder / party
        (home / "policies").mkdir(parents=True)
        (home / "policies" / "all.yaml").write_text(POLICY)
        (home / "data.ttl").write_text(data[party])
        configs[party] = home / "node.toml"
        configs[party].write_text(
            f'[node]\nparty_id = "{party}"\nname = "{party}"\nbase_iri = "{NS[party]}"\n'
            f'port = {urls[party].rsplit(":", 1)[1]}\naudit = false\n\n[keys]\ndir = "../keys/{party}"\n\n'
            f'[registry]\nurl = "{urls[REGISTRY]}"\nparty_id = "{REGISTRY}"\n'
            'ca = ["../keys/ca/root.cert.pem"]\n\n'
            "[federation]\nmax_documents = 5000\ntimeout = 60\nnode_timeout = 60\n\n"
            '[policies]\ndir = "policies"\n\n[[source]]\nname = "data"\ntype = "rdf"\npath = "data.ttl"\n'
        )
    (folder / "registry.toml").write_text("\n".join(registry))
    return folder / "registry.toml", configs, urls


def token(http: httpx.Client, folder: Path, client: str, party: str, url: str) -> str:
    form = {
        "grant_type": "client_credentials",
        "scope": "iSHARE",
        "client_id": client,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": make_assertion(load_identity(folder / "keys" / client), party, time.time()),
    }
    return str(http.post(url + "/connect/token", data=form).json()["access_token"])


def federated(http: httpx.Client, url: str, bearer: str, start: str) -> tuple[float, int, int, bool]:
    body = {"query": QUERY, "start": [start], "max_depth": 6, "max_documents": 5000, "timeout": 60}
    began = time.perf_counter()
    answer = http.post(
        url + "/federation/query", json=body, headers={"authorization": f"Bearer {bearer}"}, timeout=120
    )
    seconds = time.perf_counter() - began
    result = answer.json()
    report = result["report"]
    return seconds, report["requests"], len(result["results"]["bindings"]), report["complete"]


def naive(
    http: httpx.Client, urls: dict[str, str], bearers: dict[str, str], start: str
) -> tuple[float, int, int]:
    """One GET per IRI, one at a time, following the same links; then the same query."""
    began = time.perf_counter()
    requests, seen, todo = 0, {start}, [start]
    store = ox.Store()
    while todo:
        iri = todo.pop(0)
        party = next(p for p, ns in NS.items() if iri.startswith(ns))
        answer = http.get(
            urls[party] + "/" + iri[len(NS[party]) :],
            headers={"authorization": f"Bearer {bearers[party]}", "accept": "application/n-triples"},
        )
        requests += 1
        if answer.status_code != 200:
            continue
        for quad in ox.parse(answer.content, ox.RdfFormat.N_TRIPLES):
            store.add(ox.Quad(quad.subject, quad.predicate, quad.object))
            link = quad.object
            member = quad.predicate.value.endswith("#member")
            if (
                isinstance(link, ox.NamedNode)
                and (member or quad.predicate.value in FOLLOW)
                and link.value not in seen
            ):
                seen.add(link.value)
                todo.append(link.value)
    rows = list(store.query(QUERY, prefixes={"dsgo": "https://vocab.dsgo.example/def#"}))  # type: ignore[arg-type]
    return time.perf_counter() - began, requests, len(rows)


def measure(chains: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        registry, configs, urls = write(folder, chains)
        stack.enter_context(process([DSGO, "registry", str(registry)], urls[REGISTRY]))
        for party in (FIRM, CORP, MUNI):
            stack.enter_context(process([DSGO, "serve", str(configs[party])], urls[party]))
        http = stack.enter_context(httpx.Client(timeout=60))
        own = token(http, folder, MUNI, MUNI, urls[MUNI])
        bearers = {p: token(http, folder, MUNI, p, urls[p]) for p in (FIRM, CORP, MUNI)}
        start = f"{NS[FIRM]}collections/bot:Building?limit=1000"
        federated(http, urls[MUNI], own, start)  # warm: registry cache, tokens, capabilities
        fed_runs = [federated(http, urls[MUNI], own, start) for _ in range(repeat)]
        naive_runs = [naive(http, urls, bearers, start) for _ in range(repeat)]
        fed_rows, naive_rows = fed_runs[0][2], naive_runs[0][2]
        if fed_rows != chains or naive_rows != chains or not all(r[3] for r in fed_runs):
            print(f"warning: rows federated={fed_rows} naive={naive_rows} expected={chains}")
        return {
            "fed_s": statistics.median(r[0] for r in fed_runs),
            "fed_requests": fed_runs[-1][1],
            "naive_s": statistics.median(r[0] for r in naive_runs),
            "naive_requests": naive_runs[-1][1],
            "rows": fed_rows,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chains", type=int, default=334, help="firm -> corporation -> municipality chains")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.chains} chains = {3 * args.chains} resources on 3 nodes; median of {args.repeat} runs")
    big = measure(args.chains, args.repeat)
    small = measure(max(args.chains // 10, 10), args.repeat)
    req_ratio = big["naive_requests"] / big["fed_requests"]
    time_ratio = big["naive_s"] / big["fed_s"]
    print(f"{'':28}{'wall time':>12}{'requests':>10}{'rows':>7}")
    fed_ms = big["fed_s"] * 1000
    print(f"{'federated (batch, parallel)':28}{fed_ms:>10.0f}ms{big['fed_requests']:>10}{big['rows']:>7}")
    print(f"{'naive (GET per IRI, serial)':28}{big['naive_s'] * 1000:>10.0f}ms{big['naive_requests']:>10}")
    print(f"requests: {req_ratio:.1f}x fewer (target >= 10x) {'PASS' if req_ratio >= 10 else 'FAIL'}")
    print(f"wall time: {time_ratio:.1f}x less (target >= 5x) {'PASS' if time_ratio >= 5 else 'FAIL'}")
    print(
        f"growth: {small['rows']} -> {big['rows']} buildings: federated requests {small['fed_requests']} -> "
        f"{big['fed_requests']}, naive {small['naive_requests']} -> {big['naive_requests']}"
    )
    print(orjson.dumps({"big": big, "small": small}).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
