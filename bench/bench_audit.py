"""What does the audit log cost a read, and how much can it write?

1. ``record()`` per call, on the request thread, while the writer thread is committing
   (target: a few microseconds, no disk).
2. Sustained writing: N entries recorded as fast as one thread can, then ``flush``; the
   rate at which they are committed, chained, with ``durable=True`` (synchronous=FULL,
   one WAL sync per batch) and ``durable=False`` (synchronous=NORMAL).
3. ``verify`` speed over the result.

The entries are what a node records: reads of 1,000 resources by one party whose grant
releases 48 fields, each resource's lists the same objects on every read of it (a cached
representation's), as ``gateway.http.respond.record`` hands them in. B/entry is the
file's size per entry (format 3 stores each distinct list once per batch; format 2
repeated the 48 field IRIs, about 2 kB, in every entry).

Always exits 0: a report, not a test.

    .venv/bin/python bench/bench_audit.py [--entries 200000] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.audit import AuditLog, Entry, verify  # noqa: E402

RELEASED = tuple(sorted(f"https://vocab.dsgo.example/def#field{k:02d}" for k in range(48)))
#: per resource, its representation's lists: the same tuples on every read of it
LISTS = [
    ((f"https://data.test.example/id/building/{k}",), RELEASED, ("hello-maintenance",)) for k in range(1000)
]


def _entry(i: int) -> Entry:
    resources, released, rules = LISTS[i % 1000]
    return Entry(
        time=time.time(),
        request_id=f"req-{i}",
        caller="EU.EORI.NL000000001",
        path=f"/id/building/{i % 1000}",
        resources=resources,
        released=released,
        withheld=2,
        rules=rules,
        purpose="maintenance",
    )


def run(folder: Path, n: int, durable: bool) -> None:
    path = folder / f"audit-{'full' if durable else 'normal'}.sqlite"
    entries = [_entry(i) for i in range(n)]
    with AuditLog(path, durable=durable, max_queue=n + 1) as log:
        started, cpu = time.perf_counter(), time.process_time()
        for e in entries:
            log.record(e)
        recorded = time.perf_counter() - started
        log.flush(timeout=600)
        written = time.perf_counter() - started
        cpu = time.process_time() - cpu  # both threads: record() and the writer's encoding and commits
        status = log.status()
    started = time.perf_counter()
    report = verify(path)
    verified = time.perf_counter() - started
    mode = "FULL  " if durable else "NORMAL"
    print(
        f"synchronous={mode} record(): {recorded / n * 1e9:6.0f} ns/call   "
        f"written: {n / written:9,.0f} entries/s ({cpu / n * 1e6:.2f} µs CPU each)   "
        f"verify: {report.entries / verified:9,.0f} entries/s   "
        f"(ok={report.ok}, dropped={status.dropped}, {path.stat().st_size / n:.0f} B/entry)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--dir", type=Path, help="where the logs go (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for durable in (True, False):
            run(Path(tmp), args.entries, durable)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
