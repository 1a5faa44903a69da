"""What watching a remote store for changes costs (``gateway.store.watch``), on Virtuoso.

A private Virtuoso (``tests.servers.virtuoso_server``) holds ``--homes`` homes (the
pilot's fields: label, municipality, energy label, rent, an address as a blank node)
in a named graph. A ``StoreWatch`` on it is timed, each phase several times, median:

- ``first check``: the first poll, which reads every resource once to record it;
- ``no change``: a poll of an unchanged store, the one digest query every ``watch``
  seconds cost (also as a ratio to one resource's describe, the cheapest read);
- ``N changed``: a poll after another writer changed ``--changed`` energy labels with
  one SPARQL Update: digest, per-resource digests, and reading the changed ones.

The changes reach no notifier here (``bench_notify`` times that pipeline); no target,
a report: always exits 0 once measured. The machine may be loaded by other work.

    .venv/bin/python bench/bench_watch.py [--homes 1000] [--changed 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.store.remote import RemoteStore  # noqa: E402
from gateway.store.watch import StoreWatch  # noqa: E402
from tests.servers import Virtuoso, virtuoso_server  # noqa: E402

NS = "https://data.bench.example/"
D = "https://vocab.dsgo.example/def#"
GRAPH = "urn:dsgo:bench:watch"
LABELS = "ABCDEFG"


def homes(n: int) -> str:
    return "".join(
        f"<{NS}id/home/{i}> a <https://w3id.org/bot#Building> ;"
        f' <http://www.w3.org/2000/01/rdf-schema#label> "Home {i}" ;'
        f' <{D}municipalityCode> "0363" ; <{D}energyLabel> "{LABELS[i % 7]}" ;'
        f" <https://w3id.org/props#monthlyRent> {500 + i % 300}.5 ;"
        f' <{D}address> [ <{D}street> "Zaaiersweg" ; <{D}number> {i} ] .\n'
        for i in range(n)
    )


def relabel(virtuoso: Virtuoso, first: int, count: int, round_: int) -> None:
    """Another writer changes ``count`` homes' energy labels in one update."""
    label = LABELS[round_ % 7]
    values = " ".join(f"<{NS}id/home/{i}>" for i in range(first, first + count))
    virtuoso.update(
        f'WITH <{GRAPH}> DELETE {{ ?s <{D}energyLabel> ?old }} INSERT {{ ?s <{D}energyLabel> "{label}" }} '
        f"WHERE {{ VALUES ?s {{ {values} }} ?s <{D}energyLabel> ?old }}"
    )


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--homes", type=int, default=1000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with virtuoso_server() as virtuoso, tempfile.TemporaryDirectory() as tmp:
        data = homes(args.homes)
        for start in range(0, len(data.splitlines()), 50):  # Virtuoso takes big updates in parts
            part = "\n".join(data.splitlines()[start : start + 50])
            virtuoso.update(f"INSERT {{ GRAPH <{GRAPH}> {{ {part} }} }} WHERE {{}}")
        store = RemoteStore(virtuoso.endpoint, GRAPH, cache_ttl=0)
        firsts, quiet, changed, describe = [], [], [], []
        for r in range(args.rounds):
            watch = StoreWatch(store, "warehouse", Path(tmp) / f"seen-{r}.sqlite")
            firsts.append(timed(watch.poll))
            quiet.append(timed(watch.poll))
            describe.append(timed(lambda: store.describe(f"{NS}id/home/1")))
            relabel(virtuoso, 0, args.changed, r + 1)
            told: list[int] = []
            watch.watchers.append(lambda _n, _b, after, _v, told=told: told.append(len(after)))
            changed.append(timed(watch.poll))
            assert sum(told) >= args.changed, "the watch missed changes"
        store.close()
    med = statistics.median
    print(f"bench_watch: {args.homes} homes in Virtuoso, median of {args.rounds} (machine may be loaded)")
    print(f"  first check (records every resource)   {med(firsts) * 1000:9.1f} ms")
    print(
        f"  no change (one digest query)           {med(quiet) * 1000:9.1f} ms"
        f"   ({med(quiet) / med(describe):.1f} x one resource's describe, {med(describe) * 1000:.1f} ms)"
    )
    print(f"  {args.changed} changed (digests, read changed)    {med(changed) * 1000:9.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
