"""How long does each of the pilot's questions take, asked across real nodes?

Copies examples/pilot/ into a temporary folder with development keys of its own, runs its
registry and its four nodes as `dsgo` processes on free loopback ports (as ``dsgo demo``
does), and asks each question of ``gateway.cli.demo.QUESTIONS`` at the node of the party
that asks it, through its federated query route, ``--repeat`` times after one warm-up
(which fetches the tokens). Printed per question: rows, documents and requests of the
walk, the best and the median wall time (target: each <= 1 s), and the walk's own time
as the asking node reports it. The first question is the one the pilot answered before
the others were added: the baseline, in the same run, for what the new ones cost.
Always exits 0: a report, not a test.

    .venv/bin/python bench/bench_questions.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_resource import free_port, start, stop_all
from gateway.cli.demo import QUESTIONS, ask
from gateway.config import load_node_settings
from gateway.identity.pki import make_ca, make_party

ROOT = Path(__file__).resolve().parent.parent
PILOT = ROOT / "examples" / "pilot"
DSGO = str(Path(sys.executable).parent / "dsgo")
TARGET_S = 1.0
NODES = {
    "firm": "EU.EORI.NL000000101",
    "corporation": "EU.EORI.NL000000102",
    "municipality": "EU.EORI.NL000000103",
    "rvo": "EU.EORI.NL000000104",
}
REGISTRY = "EU.EORI.NL000000100"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-questions-") as tmp:
        root = Path(tmp)
        folder = root / "examples" / "pilot"
        shutil.copytree(PILOT, folder, ignore=shutil.ignore_patterns("state", "__pycache__"))
        make_ca(root / "keys" / "ca")
        for party in (REGISTRY, *NODES.values()):
            make_party(party, root / "keys" / party, root / "keys" / "ca")
        ports = {name: free_port() for name in ("registry", *NODES)}
        registry_url = f"http://127.0.0.1:{ports['registry']}"
        env = {n: {"DSGO_NODE_PORT": str(ports[n]), "DSGO_REGISTRY_URL": registry_url} for n in NODES}
        endpoints = ",".join(f"{NODES[n]}=http://127.0.0.1:{ports[n]}" for n in NODES)
        procs = []
        try:
            procs.append(
                start(
                    [DSGO, "registry", str(folder / "registry.toml"), "--port", str(ports["registry"])],
                    registry_url + "/health",
                    root / "registry.log",
                    env=_clean({"DSGO_PARTY_ENDPOINTS": endpoints}),
                )
            )
            for name in NODES:
                argv = [DSGO, "serve", str(folder / name / "node.toml"), "--port", str(ports[name])]
                url = f"http://127.0.0.1:{ports[name]}/health"
                procs.append(start(argv, url, root / f"{name}.log", env=_clean(env[name])))
            for question in QUESTIONS:
                settings = load_node_settings(folder / question.asker / "node.toml", env[question.asker])
                text = (folder / "queries" / question.file).read_text(encoding="utf-8")
                ask(settings, text)  # warm-up: tokens, connections, the nodes' first views
                times, walks = [], []
                for _ in range(args.repeat):
                    answer, seconds = ask(settings, text)
                    times.append(seconds)
                    walks.append(answer["report"]["elapsed_ms"] / 1000)
                report = answer["report"]
                best, median = min(times), statistics.median(times)
                print(
                    f"{question.name:11} {len(answer['results']['bindings']):2} rows, "
                    f"{report['documents']:3} documents, {report['requests']:2} requests: "
                    f"best {best * 1000:4.0f} ms, median {median * 1000:4.0f} ms "
                    f"(walk {statistics.median(walks) * 1000:4.0f} ms), complete {report['complete']}; "
                    f"target <= {TARGET_S:.0f} s: {'PASS' if median <= TARGET_S else 'FAIL'}"
                )
        finally:
            stop_all(procs)
    return 0


def _clean(extra: dict[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("DSGO_")}, **extra}


if __name__ == "__main__":
    raise SystemExit(main())
