"""How fast do the IFC and CSV connectors turn a source into triples, and in how much memory?

IFC: converts ``../shared/data/Duplex_AJ.ifc`` (IFC4, 1.4 MB, ~280 elements; not shipped
with the repository, so skipped with a message when absent) with its materials and the
quantities the model lacks computed from its geometry, and prints the best time of a few
runs (target <= 5 s), the CPU time of the process (the geometry engine uses a thread
per core), how many material parts, volumes and categories came out, and the Python heap
peak of one run (tracemalloc); then the same conversion with ``geometry = false`` (a
baseline in the same run: what meshing costs).
CSV: generates a 100,000-row energy-label table (BAG verblijfsobject id, label class,
registration date, energy index, one link per row) and prints rows per second of the
best run (target >= 20,000). Timed runs are made without tracemalloc, which slows
Python code several times; the process's peak resident size (getrusage) closes the
report. Always exits 0: a report, not a test.

    .venv/bin/python bench/bench_sources.py [--rows 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pyoxigraph as ox

from connectors import SourceEnv
from connectors.ifc import IfcModel
from connectors.table import CsvTable
from gateway.vocab import DSGO, load_vocab

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.test_table import MAPPING as TEST_MAPPING

ROOT = Path(__file__).resolve().parent.parent

DUPLEX = ROOT.parent / "shared" / "data" / "Duplex_AJ.ifc"
IFC_TARGET_S, CSV_TARGET_ROWS_S = 5.0, 20_000
ENV = SourceEnv(base_iri="https://data.bench.example/", prefixes=load_vocab().prefixes)
# the label table of tests/test_table.py, but a bad row rejects the file (none are bad here)
MAPPING = TEST_MAPPING.replace('on_error = "skip"', 'on_error = "reject"')
LABELS = ["A++++", "A+++", "A++", "A+", "A", "B", "C", "D", "E", "F", "G"]


def best_of(runs: int, load: Callable[[], Sequence[ox.Triple]]) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(runs):
        started = time.perf_counter()
        triples = load()
        best = min(best, time.perf_counter() - started)
        count = len(triples)
        del triples
    return best, count


def heap_peak(load: Callable[[], Sequence[ox.Triple]]) -> float:
    """MiB of Python heap at the peak of one load (IfcOpenShell's C++ side is not seen)."""
    tracemalloc.start()
    triples = load()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del triples
    return peak / 2**20


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def bench_ifc(runs: int) -> None:
    if not DUPLEX.is_file():
        print(f"IFC  skipped: {DUPLEX} is not there (it is not shipped with the repository)")
        return
    model = IfcModel.make(DUPLEX, {}, ENV)
    model.load()  # imports IfcOpenShell once, outside the timing
    cpu = time.process_time()
    seconds, count = best_of(runs, model.load)
    cpu = (time.process_time() - cpu) / runs
    peak = heap_peak(model.load)
    triples = model.load()
    parts = sum(1 for t in triples if t.predicate.value == DSGO + "hasMaterialPart")
    volumes = sum(1 for t in triples if t.predicate.value == DSGO + "volume")
    categories = Counter(t.object.value for t in triples if t.predicate.value == DSGO + "materialCategory")
    print(
        f"IFC  {DUPLEX.name} with materials and quantities: {count} triples in {seconds:.3f} s "
        f"(best of {runs}; {cpu:.2f} CPU-s a run), Python heap peak {peak:.1f} MiB; "
        f"target <= {IFC_TARGET_S:.0f} s: {verdict(seconds <= IFC_TARGET_S)}"
    )
    print(
        f"     {parts} material parts ({', '.join(f'{n} {c}' for c, n in categories.most_common())}), "
        f"{volumes} volumes (elements and parts)"
    )
    plain = IfcModel.make(DUPLEX, {"geometry": False}, ENV)
    seconds_plain, count_plain = best_of(runs, plain.load)
    print(
        f"     without geometry: {count_plain} triples in {seconds_plain:.3f} s: meshing costs "
        f"{seconds - seconds_plain:.2f} s ({seconds / seconds_plain:.0f}x)"
    )


def write_labels(folder: Path, rows: int) -> Path:
    rng = random.Random(42)
    lines = ["vbo_id;label;registered;index"]
    for i in range(rows):
        day = f"20{rng.randint(10, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        index = f"{rng.randint(0, 350) / 100:.2f}".replace(".", ",")
        lines.append(f"0363{i:012d};{rng.choice(LABELS)};{day};{index}")
    path = folder / "labels.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "labels.mapping.toml").write_text(MAPPING, encoding="utf-8")
    return path


def bench_csv(rows: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_labels(Path(tmp), rows)
        csv = CsvTable.make(path, {}, ENV)
        seconds, count = best_of(runs, csv.load)
        peak = heap_peak(csv.load)
    rate = rows / seconds
    print(
        f"CSV  {rows} rows: {count} triples in {seconds:.3f} s (best of {runs}) = {rate:,.0f} rows/s, "
        f"Python heap peak {peak:.1f} MiB; target >= {CSV_TARGET_ROWS_S:,} rows/s: "
        f"{verdict(rate >= CSV_TARGET_ROWS_S)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bench_ifc(args.runs)
    bench_csv(args.rows, args.runs)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"process peak resident size: {peak_rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
