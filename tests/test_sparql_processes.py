"""SPARQL that stops and shares, on real processes: a `dsgo serve` node on loopback.

- a query past its time limit stops using CPU: the node's CPU time (its own, its live
  workers', and its reaped workers') stops growing once the answer is in;
- one party's eight heavy queries leave another party's small query answered, and get
  a clear 429/503 with Retry-After where they exceed their share;
- SIGINT while a heavy query runs stops the node and its workers.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.identity.pki import load_identity
from gateway.identity.tokens import TokenIssuer
from tests.conftest import write_node
from tests.kit import CORP, FIRM, MUNI, Pki
from tests.servers import DSGO, process

#: a cross product of every triple with itself five times over, counted: no row until done
HEAVY = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l . ?m ?n2 ?o }"
ALL = """
rules:
  - id: all
    effect: permit
    to: {anyone: true}
    resources: all
    fields: all
"""


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid``, its reaped children and its live children (Linux ``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    total = sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                stat = Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()
            except FileNotFoundError:
                continue  # reaped meanwhile: counted in cutime from now on
            total += (int(stat[11]) + int(stat[12])) / tick
    return total


def _cpu(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    return [
        int(c)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]


@contextlib.contextmanager
def serving(tmp_path: Path, pki: Pki, limit: float) -> Iterator[tuple[str, dict[str, str], int]]:
    """An authenticating node with 200 triples, a ``limit`` s query limit and two workers;
    yields its URL, a token per party (minted with the node's own key) and its process id."""
    toml = write_node(
        tmp_path, open=False, party_id=FIRM, audit=False, sparql_timeout=limit, sparql_workers=2
    )
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "all.yaml").write_text(ALL)
    triples = "".join(f"<id/thing/{i}> <urn:p> {i} .\n" for i in range(200))
    (tmp_path / "data" / "buildings.ttl").write_text(f"@base <https://data.test.example/> .\n{triples}")
    toml.write_text(
        toml.read_text() + f'\n[keys]\ndir = "{pki.keys(FIRM)}"\n[registry]\nurl = "http://127.0.0.1:9"\n'
        f'party_id = "EU.EORI.NL000000000"\nca = ["{pki.ca / "root.cert.pem"}"]\n[policies]\ndir = "policies"\n'
    )
    port = (
        next(line for line in toml.read_text().splitlines() if line.startswith("port")).split("=")[1].strip()
    )
    url = f"http://127.0.0.1:{port}"
    issuer = TokenIssuer(load_identity(pki.keys(FIRM)))
    tokens = {party: issuer.issue(party, time.time()) for party in (MUNI, CORP)}
    with process([DSGO, "serve", str(toml)], url) as proc:
        yield url, tokens, proc.pid


@pytest.fixture
def node(tmp_path: Path, pki: Pki) -> Iterator[tuple[str, dict[str, str], int]]:
    with serving(tmp_path, pki, 5) as running:
        yield running


def ask(url: str, token: str, query: str, timeout: float = 60) -> httpx.Response:
    return httpx.post(
        url + "/sparql",
        content=query.encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/sparql-query"},
        timeout=timeout,
    )


def test_a_query_past_its_limit_stops_using_cpu(node: tuple[str, dict[str, str], int]) -> None:
    url, tokens, pid = node
    answer = ask(url, tokens[MUNI], HEAVY)
    assert answer.status_code == 400
    assert answer.json()["code"] == "query_limit"
    before, since = cpu_seconds(pid), time.monotonic()
    while time.monotonic() - since < 3:  # a query still running would burn ~3 CPU-seconds here
        spent = cpu_seconds(pid) - before
        assert spent < 1.0, f"the node used {spent:.1f} s of CPU after answering"
        time.sleep(0.2)
    assert ask(url, tokens[MUNI], "ASK { ?s ?p ?o }").json()["boolean"] is True  # a new worker took over


def test_another_partys_small_query_is_answered_while_one_party_runs_eight_heavy_ones(
    node: tuple[str, dict[str, str], int],
) -> None:
    url, tokens, _ = node
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        heavy = [pool.submit(ask, url, tokens[CORP], HEAVY) for _ in range(8)]
        for refused, first in enumerate(concurrent.futures.as_completed(heavy, timeout=60), 1):
            assert first.result().status_code == 429  # 1 running + 4 waiting: the rest at once
            if refused == 3:
                break
        small = ask(url, tokens[MUNI], "ASK { ?s ?p ?o }")
        assert small.status_code == 200 and small.json()["boolean"] is True
        assert not all(f.done() for f in heavy)  # answered while the heavy ones still ran
        answers = [f.result() for f in heavy]
    codes = sorted(a.json()["code"] for a in answers)
    assert codes.count("too_many_queries") == 3
    assert set(codes) <= {"too_many_queries", "query_limit", "busy"}
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers if a.status_code in (429, 503))


def test_sigint_during_a_heavy_query_stops_the_node_and_its_workers(tmp_path: Path, pki: Pki) -> None:
    with serving(tmp_path, pki, 120) as (url, tokens, pid), concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(ask, url, tokens[MUNI], HEAVY)
        deadline = time.monotonic() + 60
        while not any(_cpu(c) > 2 for c in children(pid)):  # a worker's start costs well under 2 s
            assert time.monotonic() < deadline, "the heavy query never started"
            time.sleep(0.05)
        workers = children(pid)
        os.kill(pid, signal.SIGINT)
        answer = running.result(timeout=30)
    assert answer.status_code == 503 and answer.json()["code"] == "busy"
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the node did not stop on SIGINT"
        time.sleep(0.05)
    assert not [w for w in workers if Path(f"/proc/{w}").exists()]
