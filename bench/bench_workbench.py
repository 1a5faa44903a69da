"""How many resource pages a logged-in person gets per second from one worker of their node.

Runs the pilot (``dsgo demo`` on free loopback ports, each node one uvicorn worker), logs
in to the municipality's workbench as the demo account, and loads with ``wrk -t1 -c32``:

- a local page: one of the municipality's own BAG buildings (its view through ``Access``,
  links to it, link labels; rendered once per data version, then served from the cache);
- a remote page, one hop: a home of the housing corporation, read live through the
  municipality's node with its party token under the corporation's policy (an HTTP
  request per page to the other node, nothing kept);
- as a baseline, the same local resource's API route (Turtle, a bearer token).

Targets: local >= 1,000 pages/s, remote >= 300 pages/s. On a shared 2-core machine the
remote figure includes the other node's work on the same cores (and wrk's); the
``cpu ms/page`` column is the municipality worker's own CPU time per page. Always exits
0: a report, not a test.

    .venv/bin/python bench/bench_workbench.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_resource import cpu_seconds, wrk

ROOT = Path(__file__).resolve().parent.parent
LOCAL = "https://bag.basisregistraties.overheid.nl/id/pand/0363100012000001"
REMOTE = "https://data.woonstichting.example/id/home/1001"
TARGETS = {"local page": 1000.0, "remote page (one hop)": 300.0}


def _free_block() -> int:
    sys.path.insert(0, str(ROOT))
    from tests.test_demo import free_block

    return free_block()


def _demo(tmp: Path) -> tuple[subprocess.Popen[bytes], int, str, Path]:
    shutil.copytree(
        ROOT / "examples" / "pilot", tmp / "examples" / "pilot", ignore=shutil.ignore_patterns("state")
    )
    base = _free_block()
    log = tmp / "demo.log"
    with log.open("wb") as out:
        argv = [sys.executable, "-m", "gateway.cli", "demo", "--root", str(tmp), "--port", str(base)]
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 120
    while "serving until Ctrl-C" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log.read_text())
        time.sleep(0.2)
    found = re.search(r"password '([^']+)'", log.read_text())
    assert found
    return proc, base, found.group(1), log


def _login(url: str, password: str) -> str:
    with httpx.Client(base_url=url) as client:
        form = client.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        client.post("/login", data={"username": "demo", "password": password, "csrf": csrf.group(1)})
        return f"dsgo_session={client.cookies['dsgo_session']}"


def _worker_pid(demo: int) -> int | None:
    """The municipality node's process, a child of the demo."""
    for child in Path(f"/proc/{demo}/task/{demo}/children").read_text().split():
        if "municipality" in Path(f"/proc/{child}/cmdline").read_text():
            return int(child)
    return None


def _token(tmp: Path, base: int) -> str:
    node = tmp / "examples" / "pilot" / "municipality" / "node.toml"
    env = {"DSGO_REGISTRY_URL": f"http://127.0.0.1:{base}"}
    argv = [
        str(Path(sys.executable).parent / "dsgo"),
        "token",
        "--as",
        str(node),
        "--to",
        f"http://127.0.0.1:{base + 3}",
    ]
    return subprocess.run(
        argv, capture_output=True, text=True, check=True, env={**_environ(), **env}
    ).stdout.strip()


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("DSGO_")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        proc, base, password, _ = _demo(tmp)
        try:
            url = f"http://127.0.0.1:{base + 3}"
            cookie = _login(url, password)
            pid = _worker_pid(proc.pid)
            runs = {
                "local page": (url + "/workbench/resource?iri=" + LOCAL, {"cookie": cookie}),
                "remote page (one hop)": (url + "/workbench/resource?iri=" + REMOTE, {"cookie": cookie}),
                "API GET, Turtle (baseline)": (
                    url + "/pand/0363100012000001",
                    {"authorization": "Bearer " + _token(tmp, base)},
                ),
            }
            for name, (target, headers) in runs.items():
                assert httpx.get(target, headers=headers).status_code == 200, name
            _report(runs, args.seconds, args.rounds, pid)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    return 0


def _report(runs: dict[str, tuple[str, dict[str, str]]], seconds: int, rounds: int, pid: int | None) -> None:
    problems: list[str] = []
    rates: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (target, headers) in runs.items():
            before = cpu_seconds(pid) if pid else 0.0
            rate = wrk(target, seconds, problems, headers)
            rates[name].append(rate)
            if pid:
                cpu[name].append((cpu_seconds(pid) - before) * 1000 / max(rate * seconds, 1))
    print(f"{'what':30} {'pages/s':>9} {'cpu ms/page':>12} {'target':>8}")
    for name in runs:
        median = statistics.median(rates[name])
        target = TARGETS.get(name)
        verdict = "" if target is None else ("ok" if median >= target else "BELOW")
        per_page = f"{statistics.median(cpu[name]):.2f}" if cpu[name] else "-"
        print(f"{name:30} {median:9.0f} {per_page:>12} {target or '':>8} {verdict}")
        print("    rounds: " + ", ".join(f"{r:.0f}" for r in rates[name]))
    for problem in problems:
        print("  problem:", problem)


if __name__ == "__main__":
    sys.exit(main())
