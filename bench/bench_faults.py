"""A node under heavy use and a hostile peer: two figures from real processes on loopback.

1. **Memory against a hostile peer.** A registry, the corporation's and the
   municipality's nodes of the federation tests, and in the firm's place a peer that
   answers every document with 500 MB of valid N-Triples (``tests/hostile_peer.py``). The
   municipality asks the federation tests' question with the default limits; the table
   shows its node's peak resident memory (VmHWM) before and after, and how much the peer
   managed to send before it was cut off. Target: under 100 MB above idle.
2. **Worker processes.** One node (``dsgo serve``, Redis for the replay cache, the audit
   log on) serves ``GET /id/building/1`` to an authenticated caller; ``wrk -t1 -c32`` loads
   it with 1 and with 2 workers, alternating for several rounds. Target: 2 workers give at
   least 1.6 times the requests/s of 1 (on 2 cores). wrk runs on the same two cores, so
   the table also prices each request in CPU time: the node's (all its processes) and
   wrk's. With ``n`` and ``w`` those costs, 2 cores can give at most ``2n / (n + w)``
   times one worker's rate (one worker keeps one core busy, wrk a share of the other), the
   ceiling printed beside the ratio; a node whose CPU per request does not grow with its
   second worker shares nothing that serialises its workers.

On a shared machine the figures move with the neighbours' load: trust the rounds when
they agree. Always exits 0: a report, not a test.

    .venv/bin/python bench/bench_faults.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_resource import cpu_seconds, wrk_command, wrk_result

from gateway.identity.assertions import ASSERTION_TYPE, make_assertion
from tests.kit import FIRM, MUNI
from tests.servers import CLIENT, DSGO, NODE, federation, free_port, process, redis_server
from tests.test_faults import ask, hostile_federation, peak_rss


def memory(tmp: Path) -> tuple[int, int, int, int]:
    """(idle, peak) RSS of the asking node, bytes the peer sent, the CLI's exit status."""
    with hostile_federation(tmp, "huge") as (configs, urls, muni):
        idle = peak_rss(muni)
        done = ask(configs[MUNI], tmp, "--allow-partial")
        peak = peak_rss(muni)
        sent = int(httpx.get(urls[FIRM] + "/stats").json()["sent"])
    return idle, peak, sent, done.returncode


def token(url: str, fed_identity: object) -> str:
    form = {
        "grant_type": "client_credentials",
        "scope": "iSHARE",
        "client_id": CLIENT,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": make_assertion(fed_identity, NODE, time.time()),  # type: ignore[arg-type]
    }
    answer = httpx.post(url + "/connect/token", data=form, timeout=30)
    answer.raise_for_status()
    return str(answer.json()["access_token"])


@dataclass
class Round:
    """One wrk run: its rate and the CPU seconds per request of the node and of wrk."""

    rate: float
    node: float
    wrk: float


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a node with workers is a supervisor and its children)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(p for child in children for p in tree(int(child)))]


def loaded(url: str, pid: int, seconds: int, headers: dict[str, str], problems: list[str]) -> Round:
    """wrk against ``url`` for ``seconds``, with the CPU time the node's processes and wrk spent."""
    pids = tree(pid)
    before = sum(cpu_seconds(p) for p in pids)
    run = subprocess.Popen(wrk_command(url, seconds, headers), stdout=subprocess.PIPE, text=True)
    out = run.stdout.read() if run.stdout else ""
    _, status, usage = os.wait4(run.pid, 0)
    run.returncode = os.waitstatus_to_exitcode(status)
    node = sum(cpu_seconds(p) for p in pids) - before
    rate, done = wrk_result(url, out, problems)
    return Round(rate, node / max(done, 1), (usage.ru_utime + usage.ru_stime) / max(done, 1))


def workers(tmp: Path, seconds: int, rounds: int) -> tuple[list[Round], list[Round], list[str]]:
    """One wrk run per round with 1 and with 2 workers."""
    one: list[Round] = []
    two: list[Round] = []
    problems: list[str] = []
    with redis_server() as redis:
        fed = federation(tmp, {NODE: redis})
        with ExitStack() as stack:
            stack.enter_context(fed.registry_process())
            for _ in range(rounds):
                for n, into in ((1, one), (2, two)):
                    port = free_port()
                    url = f"http://127.0.0.1:{port}"
                    argv = [DSGO, "serve", str(fed.nodes[NODE]), "--port", str(port), "--workers", str(n)]
                    with process(argv, url, timeout=60) as node:
                        headers = {"authorization": f"Bearer {token(url, fed.identity(CLIENT))}"}
                        loaded(url + "/id/building/1", node.pid, 1, headers, problems)  # warm: caches
                        into.append(loaded(url + "/id/building/1", node.pid, seconds, headers, problems))
    return one, two, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as folder:
        idle, peak, sent, code = memory(Path(folder) / "memory")
        one, two, problems = workers(Path(folder) / "workers", args.seconds, args.rounds)
    above = (peak - idle) / (1 << 20)
    print(f"{'measure':58} {'value':>14}  target")
    print(f"{'asking node peak RSS above idle, peer streaming 500 MB':58} {above:>11.1f} MB  < 100 MB")
    print(
        f"{'  (idle / peak RSS; bytes the peer sent before the cut)':58} {idle >> 20:>5} / {peak >> 20} MB"
        f"  {sent / (1 << 20):.1f} MB sent, dsgo query exit {code}"
    )
    rate1, rate2 = (statistics.median(r.rate for r in rounds) for rounds in (one, two))
    node1, node2 = (statistics.median(r.node for r in rounds) * 1e6 for rounds in (one, two))
    load = statistics.median(r.wrk for r in one) * 1e6
    print(f"{'authenticated, audited GET: 1 worker, requests/s (median)':58} {rate1:>14.0f}")
    print(f"{'                            2 workers, requests/s (median)':58} {rate2:>14.0f}")
    print(f"{'2 workers / 1 worker':58} {rate2 / rate1:>14.2f}  >= 1.6")
    costs = f"{node1:.0f} / {node2:.0f}, {load:.0f}"
    print(f"{'  CPU per request: node with 1 / 2 workers, wrk (us)':58} {costs:>14}")
    print(f"{'  ceiling with wrk on the same 2 cores, 2n / (n + w)':58} {2 * node1 / (node1 + load):>14.2f}")
    print("  rounds: " + ", ".join(f"{a.rate:.0f}/{b.rate:.0f}" for a, b in zip(one, two, strict=True)))
    for problem in problems:
        print(f"  wrk: {problem}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
