"""The audit log: every read a node serves, in an append-only, hash-chained SQLite file.

One ``Entry`` per answered read: who asked (party id or ``anonymous``), on which path,
which resources, which fields were released, *how many* were withheld (never which, never
their values), the policy rules that granted and their purpose, the time and the request
id. (A read over the caller's whole view, a collection, the counts or SPARQL, names the
caller's permits in force: no one resource's decision says which rule released what.)
``AuditLog.record`` only appends to an in-memory queue; a writer thread stores the
queue every ``flush_interval`` seconds as one batch in one transaction, so the request
path never waits on the disk.

Schema (``FORMAT`` 2)::

    batches(first INTEGER PRIMARY KEY,   seq of its first entry: 1, then previous first + count
            count INTEGER,               how many entries it holds
            entries TEXT,                JSON array of entries, each an array of the fields of
                                         ``Entry`` in order: time (seconds since the epoch,
                                         UTC), request_id, caller, path, resources (IRIs
                                         read), released (field IRIs), withheld (a count),
                                         rules (granting rule ids), purpose
            prev TEXT,                   the hash of the batch before (64 zeros for the first)
            hash TEXT)                   sha256 hex, see below
    meta(key TEXT PRIMARY KEY, value TEXT)   format, head_seq, head_hash
    VIEW entries(seq, time, request_id, caller, path, resources, released, withheld, rules,
                 purpose, batch)         one row per entry, for operators' SQL

The chain: ``hash = sha256(prev + entries)``, ``prev`` as its 64 ASCII hex digits,
``entries`` as the UTF-8 bytes stored, exactly as they are: nothing is re-encoded to
check it. Each batch reads the last batch inside its ``BEGIN IMMEDIATE`` transaction, so
the chain continues across restarts and across the worker processes of one node sharing
the file. The same transaction records the new head (last seq and hash) in ``meta``.

Why per batch and not per entry: the chain must cover every entry, and it does (an entry
edited, removed or moved changes its batch's bytes). But a canonical form, a hash and a
row per entry cost 5 to 12 µs of CPU per read (format 1 did that), a third of a cached
read served in process, while a batch costs its JSON encoding and hash (about 0.5 µs per
entry) and its share of one row (0.3 µs with 64 KiB pages).

``verify`` recomputes every hash: an edited, removed or reordered entry breaks its
batch's hash, a removed or moved batch breaks the ``first`` sequence or the next
``prev``. Deleting the *last* batches leaves a valid shorter chain; the head in ``meta``
catches that, unless whoever deleted them also rewrote ``meta``. The chain cannot stop
someone who may write the file and rewrites it all; the full answer is an external
anchor: export ``head(path)`` now and then (to another party, a ticket, a printed
report) and pass it to ``verify(path, anchor=...)``.

Crash semantics. WAL mode: a transaction is all or nothing, so any crash leaves a
prefix of the batches and the chain valid. What a crash may lose:

- the process dies (SIGKILL, OOM): the entries still queued, at most one flush
  interval's worth; SQLite keeps every committed transaction across application
  crashes whatever ``synchronous`` says.
- the machine dies (power loss, kernel panic): with ``durable=True`` (the default,
  ``synchronous=FULL``) the same; the WAL is synced once per batch, i.e. a few times a
  second on the writer thread, never per read. With ``durable=False``
  (``synchronous=NORMAL``) the WAL is synced only at checkpoints, so a power loss may
  also roll back the batches committed since the last checkpoint: still a valid chain,
  but possibly more than one interval lost (sqlite.org/pragma.html#pragma_synchronous).

A full queue (``max_queue`` entries waiting, e.g. the disk stalls) never blocks a
request: the entry is counted, and the next batch ends with a gap entry (caller
``dsgo``, path ``audit:dropped``, ``withheld`` = how many reads went unrecorded, purpose
``queue full``) so the loss is in the chain itself. An entry that cannot be stored (a
time that is not a finite number, text that is not UTF-8: what JSON cannot hold) becomes
such a gap too (purpose ``could not be stored``) rather than blocking the batches behind
it. Anything else is stored as it was recorded; ``Entry``'s types are the caller's to keep.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from gateway.errors import GatewayError

__all__ = [
    "COLUMNS",
    "DROPPED_PATH",
    "FORMAT",
    "QUEUE_FULL",
    "UNSTORABLE",
    "ZERO_HASH",
    "AuditLog",
    "AuditStatus",
    "Entry",
    "Row",
    "VerifyReport",
    "add_parser",
    "format_entry",
    "head",
    "tail",
    "verify",
]

FORMAT = "2"
ZERO_HASH = "0" * 64
DROPPED_PATH = "audit:dropped"
QUEUE_FULL, UNSTORABLE = "queue full", "could not be stored"  # a gap entry's purpose: why
_MAX_PROBLEMS = 100
_CLOSE_RETRIES = 3
_LAST = "SELECT first + count - 1, hash FROM batches ORDER BY first DESC LIMIT 1"
_OLDER_FORMATS = frozenset({"1"})  # an existing log of these is moved aside: a new one begins
_log = logging.getLogger(__name__)


class Entry(NamedTuple):
    """One read as the audit log keeps it: what was released, and only how much was withheld.

    The fields, named; the request path hands the same values to ``record`` as a ``Row``."""

    time: float
    request_id: str
    caller: str
    path: str
    resources: tuple[str, ...]
    released: tuple[str, ...]
    withheld: int
    rules: tuple[str, ...]
    purpose: str


#: what ``AuditLog.record`` takes: an ``Entry``, or a plain tuple of the same fields in the
#: same order (cheaper to make on every read, and not followed by the garbage collector)
Row = tuple[float, str, str, str, tuple[str, ...], tuple[str, ...], int, tuple[str, ...], str]

#: of the ``entries`` view, in order; there is no column a withheld value could go in
COLUMNS = ("seq", *Entry._fields)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS batches (first INTEGER PRIMARY KEY, count INTEGER NOT NULL,"
    " entries TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE VIEW IF NOT EXISTS entries AS SELECT b.first + e.key AS seq, "  # noqa: S608 (constants)
    + ", ".join(
        f"e.value {'->' if name in ('resources', 'released', 'rules') else '->>'} {i} AS {name}"
        for i, name in enumerate(Entry._fields)
    )
    + ", b.first AS batch FROM batches AS b, json_each(b.entries) AS e",
)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """``ok`` when every hash, link and the head agree; else ``problems`` name each seq."""

    ok: bool
    entries: int
    problems: list[str]
    head: tuple[int, str]  # the last entry's (seq, hash) as found


@dataclass(frozen=True, slots=True)
class AuditStatus:
    """For ``/health``: what waits in memory, what was committed and lost, the last error."""

    queued: int
    written: int
    dropped: int
    last_error: str | None


class AuditLog:
    """The writing side of one audit file: ``record`` from any thread, ``close`` to flush.

    ``with AuditLog(path) as log: log.record(entry)``. Opening creates the file and checks
    its format, so an unwritable path stops the node at start, not at its first read.
    """

    def __init__(
        self,
        path: Path,
        *,
        flush_interval: float = 0.2,
        max_batch: int = 10_000,
        max_queue: int = 100_000,
        durable: bool = True,
    ) -> None:
        if flush_interval <= 0 or max_batch < 1 or max_queue < 1:
            raise ValueError("flush_interval, max_batch and max_queue must be positive")
        self.path = Path(path)
        self._interval, self._max_batch, self._max_queue = flush_interval, max_batch, max_queue
        self._db = _open_for_writing(self.path, durable)
        self._lock = threading.Lock()
        self._queue: deque[Row] = deque()
        self._pending: list[Row] = []  # taken from the queue, not committed yet: writer only
        self._dropped, self._first_drop, self._dropped_total = 0, 0.0, 0
        self._taken = 0  # entries the writer took from the queue, and gap entries it added
        self._written = 0
        self._written_cond = threading.Condition()
        self._last_error: str | None = None
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def __enter__(self) -> AuditLog:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the writer thread (once)."""
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name=f"audit {self.path.name}", daemon=True)
            self._thread.start()

    def record(self, entry: Row) -> None:
        """Queue one read (an ``Entry`` or a plain ``Row``): never touches the disk, never
        waits for the writer, takes no lock unless the queue is full (a deque's append is
        atomic; the writer takes entries out one by one under the lock)."""
        if self._closed:
            raise RuntimeError(f"{self.path}: the audit log is closed")
        if len(self._queue) < self._max_queue:
            self._queue.append(entry)
            return
        with self._lock:
            if not self._dropped:
                self._first_drop = entry[0]
            self._dropped += 1

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until all recorded so far is committed; False if ``timeout`` passed first."""
        with self._lock:  # what was taken and what waits, at one instant
            target = self._taken + len(self._queue) + (1 if self._dropped else 0)
        if self._thread is None:
            self._drain()
        else:
            self._wake.set()
        with self._written_cond:
            return self._written_cond.wait_for(lambda: self._written >= target, timeout)

    def close(self) -> None:
        """Stop accepting entries, commit all that are queued, close the file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake.set()
        try:
            if self._thread is not None:
                self._thread.join()
            else:
                self._drain()
        finally:
            if self._pending or self._queue:
                _log.error("%s: %d audit entries could not be written", self.path, self._unwritten())
            self._db.close()

    def status(self) -> AuditStatus:
        with self._lock:
            return AuditStatus(
                queued=self._unwritten(),
                written=self._written,
                dropped=self._dropped_total + self._dropped,
                last_error=self._last_error,
            )

    def _unwritten(self) -> int:
        return len(self._queue) + len(self._pending)

    def _run(self) -> None:
        closed = False
        while not closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._lock:
                closed = self._closed
            self._drain()
        for _ in range(_CLOSE_RETRIES):  # closing while the disk refuses: a few more tries
            if not self._pending:
                return
            time.sleep(self._interval)
            self._drain()

    def _drain(self) -> None:
        """Commit what is queued, ``max_batch`` entries per transaction (writer side).

        The lock is held to take the queue's entries, never during I/O. A batch that fails
        stays pending and is retried before anything new is taken, so memory stays
        bounded by ``max_queue`` while the disk refuses.
        """
        while True:
            if not self._pending:
                with self._lock:
                    queue = self._queue  # popped, not swapped: record() may be appending
                    batch = [queue.popleft() for _ in range(len(queue))]
                    dropped, self._dropped, first_drop = self._dropped, 0, self._first_drop
                    self._dropped_total += dropped
                    self._taken += len(batch) + (1 if dropped else 0)
                self._pending.extend(batch)
                if dropped:  # every drop came after the last accepted entry: the gap goes last
                    self._pending.append(_gap(dropped, first_drop, QUEUE_FULL))
            while self._pending:
                chunk = self._pending[: self._max_batch]
                try:
                    problems = _append(self._db, chunk)
                except Exception as exc:  # the writer must outlive any one bad batch
                    with self._lock:
                        self._last_error = f"{type(exc).__name__}: {exc}"
                    _log.error("%s: audit batch not written, will retry (%s)", self.path, exc)
                    return
                del self._pending[: len(chunk)]
                for problem in problems:
                    _log.error("%s: %s", self.path, problem)
                with self._lock:
                    self._last_error = None
                    self._dropped_total += len(problems)
                with self._written_cond:
                    self._written += len(chunk)
                    self._written_cond.notify_all()
            with self._lock:  # a backlog (or closing) is written at once, not next interval
                more = len(self._queue) >= self._max_batch or (self._closed and bool(self._queue))
            if not more:
                return


def verify(path: Path, *, anchor: tuple[int, str] | None = None) -> VerifyReport:
    """Recompute the chain; each problem names the entries (seqs) and what is wrong.

    ``anchor`` is a ``(seq, hash)`` exported earlier with ``head``: that batch must still
    be there unchanged, ending at that seq, which catches a log rewritten or cut off
    after the export.
    """
    problems: list[str] = []
    count, expected, prev = 0, 1, ZERO_HASH
    anchored = anchor is None
    with _reading(path) as db:
        db.execute("BEGIN")  # one snapshot: the head is read with the batches it covers
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        for first, size, text, stored_prev, stored_hash in db.execute(
            "SELECT first, count, entries, prev, hash FROM batches ORDER BY first"
        ):
            span = _span(first, size)
            if not isinstance(size, int) or size < 1:
                problems.append(f"{span}: its count {size!r} is not a count of entries (edited)")
                size = len(_batch(text) or ())
            if first < expected:
                problems.append(f"{span}: overlaps the entries before it (the log starts at 1)")
            elif first > expected:
                problems.append(f"{_span(expected, first - expected)}: missing")
            if stored_prev != prev:
                problems.append(f"{span}: prev is not the hash of the batch before it (removed or moved)")
            if _link(stored_prev, text) != stored_hash:
                problems.append(f"{span}: hash does not match the content (edited)")
            held = _batch(text)
            if held is None or len(held) != size:
                problems.append(f"{span}: does not hold {size} entries as its count says (edited)")
            if anchor is not None and first <= anchor[0] < first + size:
                anchored = True
                if stored_hash != anchor[1] or anchor[0] != first + size - 1:
                    problems.append(f"{span}: differs from the anchor {anchor[0]}:{anchor[1]} (rewritten)")
            count += size
            expected, prev = first + size, stored_hash
        db.execute("COMMIT")
    last = (expected - 1, prev)
    problems.extend(_check_head(meta, last))
    if not anchored and anchor is not None:
        problems.append(f"seq {anchor[0]}: the anchored entry is missing (cut off)")
    if len(problems) > _MAX_PROBLEMS:
        problems[_MAX_PROBLEMS:] = [f"... and {len(problems) - _MAX_PROBLEMS} more problems"]
    return VerifyReport(ok=not problems, entries=count, problems=problems, head=last)


def head(path: Path) -> tuple[int, str]:
    """The last entry's ``(seq, hash)``: export it now and then as an external anchor."""
    with _reading(path) as db:
        row = db.execute(_LAST).fetchone()
    return (int(row[0]), str(row[1])) if row else (0, ZERO_HASH)


def tail(path: Path, n: int = 20) -> list[dict[str, Any]]:
    """The latest ``n`` entries, oldest first, as dicts of ``COLUMNS``.

    An entry that is not what the writer stores (the file was edited) is shown with path
    ``audit:unreadable``; ``verify`` says what is wrong."""
    out: list[dict[str, Any]] = []
    with _reading(path) as db:
        db.execute("BEGIN")
        for first, text in db.execute("SELECT first, entries FROM batches ORDER BY first DESC"):
            if len(out) >= n:
                break
            held = _batch(text) or [None]
            out.extend(_entry_dict(first + i, held[i]) for i in reversed(range(len(held))))
        db.execute("COMMIT")
    return list(reversed(out[: max(n, 0)]))


def format_entry(row: Mapping[str, Any]) -> str:
    """One line for a human: seq, time (UTC), caller, path, counts, rules, purpose."""
    try:
        when = datetime.fromtimestamp(row["time"], UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    except (TypeError, ValueError, OverflowError, OSError):  # an edited time is still shown
        when = repr(row["time"])
    lead = f"{row['seq']:>6} {when} {row['caller']} {row['path']}"
    if row["caller"] == "dsgo" and row["path"] == DROPPED_PATH:
        return f"{lead} {row['withheld']} reads not recorded ({row['purpose']})"
    purpose = f" purpose={row['purpose']}" if row["purpose"] else ""
    return (
        f"{lead} resources={len(row['resources'])} released={len(row['released'])}"
        f" withheld={row['withheld']} rules={','.join(row['rules']) or '-'}{purpose}"
        f" request={row['request_id'] or '-'}"
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``dsgo audit verify NODE.toml`` and ``dsgo audit tail NODE.toml`` (called by ``gateway.cli``).

    ``verify`` prints each problem and a last line with the head to export as an anchor;
    exit status 0 intact, 1 broken, 2 an error (``dsgo: ...``).
    """
    audit = subparsers.add_parser("audit", help="check or show the audit log of every read")
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("verify", help="recompute the hash chain: any entry edited, removed or moved?")
    p.add_argument("config", type=Path, metavar="NODE.toml")
    p.add_argument(
        "--anchor", metavar="SEQ:HASH", help="a head printed by an earlier verify: must still be there"
    )
    p.set_defaults(run=_cli_verify)
    p = actions.add_parser("tail", help="the latest reads, one line each, oldest first")
    p.add_argument("config", type=Path, metavar="NODE.toml")
    p.add_argument("-n", type=int, default=20, metavar="N", help="how many (default 20)")
    p.set_defaults(run=_cli_tail)


def _cli_path(config: Path) -> Path:
    from gateway.config import load_node_settings  # the CLI's concern, not this engine's

    settings = load_node_settings(config)
    if settings.audit_path is None:
        raise GatewayError(f"{settings.file}: node.audit is false, so this node keeps no audit log")
    return settings.audit_path


def _cli_verify(args: argparse.Namespace) -> int:
    anchor = None
    if args.anchor is not None:
        found = re.fullmatch(r"(\d+):([0-9a-f]{64})", args.anchor)
        if not found:
            raise GatewayError(f"--anchor: expected SEQ:HASH as verify prints it, got {args.anchor!r}")
        anchor = (int(found[1]), found[2])
    path = _cli_path(args.config)
    report = verify(path, anchor=anchor)
    for problem in report.problems:
        print(f"{path}: {problem}")
    state = "intact" if report.ok else "BROKEN"
    print(f"{path}: {state}, {report.entries} entries, head {report.head[0]}:{report.head[1]}")
    return 0 if report.ok else 1


def _cli_tail(args: argparse.Namespace) -> int:
    for row in tail(_cli_path(args.config), args.n):
        print(format_entry(row))
    return 0


def _gap(count: int, when: float, why: str) -> Entry:
    return Entry(when, "", "dsgo", DROPPED_PATH, (), (), count, (), why)


def _span(first: Any, size: Any) -> str:
    if isinstance(first, int) and isinstance(size, int) and size > 1:
        return f"seq {first}..{first + size - 1}"
    return f"seq {first}"


def _link(prev: Any, text: Any) -> str | None:
    """``sha256(prev + entries)``, hex; None for what cannot be a batch."""
    if not isinstance(prev, str) or not isinstance(text, str | bytes):
        return None
    chain = hashlib.sha256(prev.encode())
    chain.update(text.encode(errors="surrogateescape") if isinstance(text, str) else text)
    return chain.hexdigest()


def _batch(text: Any) -> list[Any] | None:
    """A stored batch's entries, or None if it is not a JSON array."""
    try:
        held = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return None
    return held if isinstance(held, list) else None


_UNREADABLE = "audit:unreadable"


def _entry_dict(seq: int, fields: Any) -> dict[str, Any]:
    if not isinstance(fields, list) or len(fields) != len(Entry._fields):
        return dict(
            zip(
                COLUMNS,
                (seq, None, "", "?", _UNREADABLE, [], [], 0, [], "run dsgo audit verify"),
                strict=True,
            )
        )
    out = dict(zip(COLUMNS, (seq, *fields), strict=True))
    for key in ("resources", "released", "rules"):
        if not isinstance(out[key], list):
            out[key] = [out[key]]
    return out


def _encode(entries: Sequence[Row]) -> tuple[bytes, int, list[str]]:
    """A batch as stored: its JSON (bytes), how many entries it holds, and one problem per
    entry that could not be stored (they are replaced by one gap entry at the end)."""
    rows: list[tuple[Any, ...]] = list(map(tuple, entries))  # an Entry as a plain tuple
    with contextlib.suppress(TypeError):  # orjson.JSONEncodeError is a TypeError
        if all(map(math.isfinite, [row[0] for row in rows])):
            return orjson.dumps(rows), len(rows), []
    kept, problems = [], []
    for row in rows:  # the rare slow path: find the culprits
        try:
            if not math.isfinite(row[0]):
                raise ValueError("time must be a finite number")
            orjson.dumps(row)
        except (TypeError, ValueError) as exc:
            problems.append(f"audit entry of request {row[1]!r} not stored ({exc}): counted as dropped")
            continue
        kept.append(row)
    if problems:
        kept.append(tuple(_gap(len(problems), time.time(), UNSTORABLE)))
    return orjson.dumps(kept), len(kept), problems


def _append(db: sqlite3.Connection, entries: Sequence[Row]) -> list[str]:
    """One transaction: the batch after the last one, and the head moved to its end.

    Returns one problem per entry that could not be stored (see ``_encode``)."""
    blob, size, problems = _encode(entries)
    text = blob.decode()  # TEXT, so that SQLite's JSON functions read it (the view)
    db.execute("BEGIN IMMEDIATE")  # the write lock first: other workers append to this file too
    try:
        last = db.execute(_LAST).fetchone()
        seq, prev = (int(last[0]), str(last[1])) if last else (0, ZERO_HASH)
        digest = _link(prev, blob)
        db.execute(
            "INSERT INTO batches (first, count, entries, prev, hash) VALUES (?, ?, ?, ?, ?)",
            (seq + 1, size, text, prev, digest),
        )
        db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (("head_seq", str(seq + size)), ("head_hash", digest)),
        )
        db.execute("COMMIT")
        return problems
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _check_head(meta: Mapping[str, str], last: tuple[int, str]) -> list[str]:
    if meta.get("format") != FORMAT:
        return [f"format {meta.get('format')!r} is not {FORMAT!r} (meta edited, or not an audit log)"]
    try:
        head_seq = int(meta.get("head_seq", "0"))
    except ValueError:
        return [f"the recorded head seq {meta.get('head_seq')!r} is not a number (meta edited)"]
    head_hash = meta.get("head_hash", ZERO_HASH)
    if last[0] < head_seq:
        return [f"seq {last[0] + 1}..{head_seq}: missing at the end (the recorded head is seq {head_seq})"]
    if last[0] > head_seq:
        return [
            f"seq {head_seq + 1}..{last[0]}: beyond the recorded head (seq {head_seq}): not appended here"
        ]
    if last[1] != head_hash:
        return [f"seq {last[0]}: hash differs from the recorded head {head_hash}"]
    return []


def _open_for_writing(path: Path, durable: bool) -> sqlite3.Connection:
    """The log at ``path``, created if need be. A log of an older format is moved aside
    (renamed, untouched) and a new one begins; one of an unknown format is refused."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError as exc:
        raise GatewayError(f"{path}: cannot open the audit log ({exc})") from None
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)  # a node's workers start together: one opens at a time
        try:
            return _connect(path, durable)
        except _OlderFormat as older:
            aside = _move_aside(path, older.format)
            _log.warning(
                "%s: the audit log of format %r there (head %s) was moved to %s, unchanged: verify it"
                " with the dsgo that wrote it. A new log of format %r starts here.",
                path,
                older.format,
                older.head,
                aside,
                FORMAT,
            )
            return _connect(path, durable)
    finally:
        os.close(folder)  # and with it the lock


class _OlderFormat(Exception):
    def __init__(self, format_: str, head: str) -> None:
        super().__init__(format_)
        self.format, self.head = format_, head


def _connect(path: Path, durable: bool) -> sqlite3.Connection:
    try:
        # one thread at a time uses it: this one, then the writer thread, then close()
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise GatewayError(f"{path}: cannot open the audit log ({exc})") from None
    try:
        db.execute("PRAGMA busy_timeout = 5000")  # other worker processes of the node
        # a new file only: batches are large, and with 64 KiB pages SQLite stores one in a
        # quarter of the CPU time it takes with its default 4 KiB
        db.execute("PRAGMA page_size = 65536")
        if str(db.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower() != "wal":
            raise GatewayError(f"{path}: the audit log needs WAL mode, which this file system refuses")
        db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        db.execute("BEGIN IMMEDIATE")
        db.execute(_SCHEMA[1])  # meta first: its format decides whether to add anything
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        found = meta.get("format")
        if found is not None and found != FORMAT:
            db.execute("ROLLBACK")  # the file is left as it was
            if found in _OLDER_FORMATS:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all of it in the one file
                raise _OlderFormat(found, f"{meta.get('head_seq')}:{meta.get('head_hash')}")
            raise GatewayError(
                f"{path}: audit log format {found!r}, which this dsgo (format {FORMAT!r}) does not know;"
                " a newer dsgo wrote it? Keep it as it is and give node.audit a new path"
            )
        if (
            found is None
            and db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name NOT IN ('meta', 'batches')"
            ).fetchone()
        ):
            raise GatewayError(
                f"{path}: a SQLite file with other tables, not an audit log; give node.audit a new path"
            )
        for statement in _SCHEMA:
            db.execute(statement)
        if found is None:
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                (("format", FORMAT), ("head_seq", "0"), ("head_hash", ZERO_HASH)),
            )
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        db.close()
        raise GatewayError(f"{path}: not a usable audit log ({exc})") from None
    except BaseException:
        db.close()
        raise
    return db


def _move_aside(path: Path, format_: str) -> Path:
    """Rename ``path`` (and any WAL left beside it) to a free ``NAME.formatN[.K]``."""
    aside = path.with_name(f"{path.name}.format{format_}")
    for k in range(2, 1000):
        if not aside.exists():
            break
        aside = path.with_name(f"{path.name}.format{format_}.{k}")
    try:
        for suffix in ("-wal", "-shm"):
            extra = path.with_name(path.name + suffix)
            if extra.exists():
                extra.rename(aside.with_name(aside.name + suffix))
        path.rename(aside)
    except OSError as exc:
        raise GatewayError(
            f"{path}: an audit log of format {format_!r} could not be moved aside ({exc})"
        ) from None
    return aside


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[sqlite3.Connection]:
    """Read only, never creating the file; fine while a node is writing it."""
    path = Path(path)
    if not path.is_file():
        raise GatewayError(f"{path}: no audit log here")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise GatewayError(f"{path}: cannot open the audit log ({exc})") from None
    # the bytes as stored, even where an edit left them not UTF-8: their hash is checked
    db.text_factory = lambda data: data.decode(errors="surrogateescape")
    try:
        db.execute("PRAGMA busy_timeout = 5000")
        yield db
    except sqlite3.Error as exc:
        raise GatewayError(f"{path}: not a readable audit log ({exc})") from None
    finally:
        db.close()
