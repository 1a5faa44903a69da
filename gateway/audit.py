"""The audit log: every read a node serves, in an append-only, hash-chained SQLite file.

One ``Entry`` per answered read: who asked (party id or ``anonymous``), on which path,
which resources, which fields were released, *how many* were withheld (never which, never
their values), the policy rules that granted and their purpose, the time and the request
id. ``AuditLog.record`` only appends to an in-memory queue; a writer thread stores the
queue every ``flush_interval`` seconds as one transaction, so the request path never
waits on the disk.

Schema (``FORMAT`` 1)::

    entries(seq INTEGER PRIMARY KEY,     1, 2, 3, ... without gaps
            time REAL,                   seconds since the epoch (UTC)
            request_id TEXT, caller TEXT, path TEXT,
            resources TEXT,              JSON array of IRIs read
            released TEXT,               JSON array of field (property) IRIs released
            withheld INTEGER,            how many fields were withheld
            rules TEXT,                  JSON array of the granting rule ids
            purpose TEXT,
            prev TEXT,                   hash of entry seq - 1 (64 zeros for seq 1)
            hash TEXT)                   sha256 hex, see below
    meta(key TEXT PRIMARY KEY, value TEXT)   format, head_seq, head_hash

The chain: ``hash = sha256(prev + canonical_json(entry))`` where ``canonical_json`` is
the entry's columns from ``seq`` to ``purpose`` as one JSON object with sorted keys and
no spaces (orjson ``OPT_SORT_KEYS``), lists as arrays. Each batch reads the last row
inside its ``BEGIN IMMEDIATE`` transaction, so the chain continues across restarts and
across the worker processes of one node sharing the file. The same transaction records
the new head (last seq and hash) in ``meta``.

``verify`` recomputes every hash: an edited entry breaks its own hash, a removed or
moved one breaks the ``seq`` sequence or the next ``prev``. Deleting the *last* entries
leaves a valid shorter chain; the head in ``meta`` catches that, unless whoever deleted
them also rewrote ``meta``. The chain cannot stop someone who may write the file and
rewrites it all; the full answer is an external anchor: export ``head(path)`` now and
then (to another party, a ticket, a printed report) and pass it to
``verify(path, anchor=...)``.

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
time that is not finite, text that is not UTF-8) becomes such a gap too (purpose
``could not be stored``) rather than blocking the batches behind it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import math
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    "VerifyReport",
    "add_parser",
    "format_entry",
    "head",
    "tail",
    "verify",
]

FORMAT = "1"
ZERO_HASH = "0" * 64
DROPPED_PATH = "audit:dropped"
QUEUE_FULL, UNSTORABLE = "queue full", "could not be stored"  # a gap entry's purpose: why
COLUMNS = (  # of ``entries``, in order; there is no column a withheld value could go in
    "seq",
    "time",
    "request_id",
    "caller",
    "path",
    "resources",
    "released",
    "withheld",
    "rules",
    "purpose",
    "prev",
    "hash",
)
_LISTS = (5, 6, 8)  # resources, released, rules: JSON arrays in their columns
_MAX_PROBLEMS = 100
_CLOSE_RETRIES = 3
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, time REAL NOT NULL,"
    " request_id TEXT NOT NULL, caller TEXT NOT NULL, path TEXT NOT NULL, resources TEXT NOT NULL,"
    " released TEXT NOT NULL, withheld INTEGER NOT NULL, rules TEXT NOT NULL, purpose TEXT NOT NULL,"
    " prev TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
_INSERT = f"INSERT INTO entries ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"  # noqa: S608
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM entries"  # noqa: S608
_LAST = "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1"
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Entry:
    """One read as the audit log keeps it: what was released, and only how much was withheld."""

    time: float
    request_id: str
    caller: str
    path: str
    resources: tuple[str, ...]
    released: tuple[str, ...]
    withheld: int
    rules: tuple[str, ...]
    purpose: str


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
        max_batch: int = 1000,
        max_queue: int = 100_000,
        durable: bool = True,
    ) -> None:
        if flush_interval <= 0 or max_batch < 1 or max_queue < 1:
            raise ValueError("flush_interval, max_batch and max_queue must be positive")
        self.path = Path(path)
        self._interval, self._max_batch, self._max_queue = flush_interval, max_batch, max_queue
        self._db = _open_for_writing(self.path, durable)
        self._lock = threading.Lock()
        self._queue: deque[Entry] = deque()
        self._pending: list[Entry] = []  # taken from the queue, not committed yet: writer only
        self._dropped, self._first_drop, self._dropped_total = 0, 0.0, 0
        self._accepted = 0  # entries handed to the writer: recorded ones and gap entries
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

    def record(self, entry: Entry) -> None:
        """Queue one read: never touches the disk, never waits for the writer."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.path}: the audit log is closed")
            if len(self._queue) >= self._max_queue:
                if not self._dropped:
                    self._first_drop = entry.time
                self._dropped += 1
                return
            self._queue.append(entry)
            self._accepted += 1

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until all recorded so far is committed; False if ``timeout`` passed first."""
        with self._lock:
            target = self._accepted + (1 if self._dropped else 0)
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

        The lock is held to swap the queue out, never during I/O. A batch that fails
        stays pending and is retried before anything new is taken, so memory stays
        bounded by ``max_queue`` while the disk refuses.
        """
        while True:
            if not self._pending:
                with self._lock:
                    batch, self._queue = self._queue, deque()
                    dropped, self._dropped, first_drop = self._dropped, 0, self._first_drop
                    self._dropped_total += dropped
                    self._accepted += 1 if dropped else 0
                self._pending.extend(batch)
                if dropped:  # every drop came after the last accepted entry: the gap goes last
                    self._pending.append(_gap(dropped, first_drop, QUEUE_FULL))
            while self._pending:
                chunk = self._pending[: self._max_batch]
                try:
                    bad = _append(self._db, chunk)
                except Exception as exc:  # the writer must outlive any one bad batch
                    with self._lock:
                        self._last_error = f"{type(exc).__name__}: {exc}"
                    _log.error("%s: audit batch not written, will retry (%s)", self.path, exc)
                    return
                del self._pending[: len(chunk)]
                with self._lock:
                    self._last_error = None
                    self._dropped_total += bad
                with self._written_cond:
                    self._written += len(chunk)
                    self._written_cond.notify_all()
            with self._lock:  # a backlog (or closing) is written at once, not next interval
                more = len(self._queue) >= self._max_batch or (self._closed and bool(self._queue))
            if not more:
                return


def verify(path: Path, *, anchor: tuple[int, str] | None = None) -> VerifyReport:
    """Recompute the chain; each problem names the seq and what is wrong with it.

    ``anchor`` is a ``(seq, hash)`` exported earlier with ``head``: that entry must still
    be there unchanged, which catches a log rewritten or cut off after the export.
    """
    problems: list[str] = []
    count, expected, prev = 0, 1, ZERO_HASH
    anchored = anchor is None
    with _reading(path) as db:
        db.execute("BEGIN")  # one snapshot: the head is read with the rows it covers
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        for row in db.execute(f"{_SELECT} ORDER BY seq"):
            count += 1
            seq, stored_prev, stored_hash = row[0], row[10], row[11]
            if seq < expected:
                problems.append(f"seq {seq}: not a valid seq (the log starts at 1)")
            elif seq == expected + 1:
                problems.append(f"seq {seq}: entry {expected} is missing")
            elif seq > expected:
                problems.append(f"seq {seq}: entries {expected}..{seq - 1} are missing")
            if stored_prev != prev:
                problems.append(f"seq {seq}: prev is not the hash of the entry before it (removed or moved)")
            if _link(stored_prev, _stored_canonical(row)) != stored_hash:
                problems.append(f"seq {seq}: hash does not match the content (edited)")
            if anchor is not None and seq == anchor[0]:
                anchored = True
                if stored_hash != anchor[1]:
                    problems.append(f"seq {seq}: hash differs from the anchor {anchor[1]} (rewritten)")
            expected, prev = seq + 1, stored_hash
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
    """The latest ``n`` entries, oldest first, with their lists decoded."""
    with _reading(path) as db:
        rows = db.execute(f"{_SELECT} ORDER BY seq DESC LIMIT ?", (max(n, 0),)).fetchall()
    return [_decoded(row) for row in reversed(rows)]


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


def _canonical(values: Sequence[Any]) -> bytes:
    """``values`` = seq .. purpose with lists as lists: the bytes an entry's hash covers."""
    return orjson.dumps(dict(zip(COLUMNS[:10], values, strict=True)), option=orjson.OPT_SORT_KEYS)


def _link(prev: Any, canonical: bytes | None) -> str | None:
    """``sha256(prev + canonical_json(entry))``, hex; None for what cannot be an entry."""
    if canonical is None or not isinstance(prev, str):
        return None
    return hashlib.sha256(prev.encode() + canonical).hexdigest()


def _stored_canonical(row: Sequence[Any]) -> bytes | None:
    values = list(row[:10])
    try:
        for i in _LISTS:
            values[i] = orjson.loads(values[i])
        return _canonical(values)
    except (orjson.JSONDecodeError, TypeError):
        return None


def _chained(seq: int, prev: str, entry: Entry) -> tuple[Any, ...]:
    """The row for ``entry`` at ``seq`` after ``prev``; ValueError/TypeError if it has no form.

    On the writer thread for every entry, so built with as few steps as the canonical form
    allows: the same bytes as ``_canonical`` (sorted keys), lists dumped once each."""
    if not math.isfinite(entry.time) or not 0 <= entry.withheld < 2**63:
        raise ValueError("time must be finite and withheld a count")
    resources, released, rules = list(entry.resources), list(entry.released), list(entry.rules)
    for text in (entry.request_id, entry.caller, entry.path, entry.purpose, *resources, *released, *rules):
        if not isinstance(text, str):
            raise TypeError("entry fields must be text")
    canonical = orjson.dumps(
        {
            "seq": seq,
            "time": float(entry.time),
            "request_id": entry.request_id,
            "caller": entry.caller,
            "path": entry.path,
            "resources": resources,
            "released": released,
            "withheld": int(entry.withheld),
            "rules": rules,
            "purpose": entry.purpose,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    digest = hashlib.sha256(prev.encode() + canonical).hexdigest()
    return (
        seq,
        float(entry.time),
        entry.request_id,
        entry.caller,
        entry.path,
        orjson.dumps(resources).decode(),
        orjson.dumps(released).decode(),
        int(entry.withheld),
        orjson.dumps(rules).decode(),
        entry.purpose,
        prev,
        digest,
    )


def _append(db: sqlite3.Connection, entries: Sequence[Entry]) -> int:
    """One transaction: continue the chain from the last row, move the head.

    Returns how many entries could not be stored (they became one gap entry).
    """
    db.execute("BEGIN IMMEDIATE")  # the write lock first: other workers append to this file too
    try:
        last = db.execute(_LAST).fetchone()
        seq, prev = (int(last[0]), str(last[1])) if last else (0, ZERO_HASH)
        rows: list[tuple[Any, ...]] = []
        bad, bad_time = 0, 0.0
        for entry in entries:
            try:
                row = _chained(seq + 1, prev, entry)
            except (TypeError, ValueError, OverflowError) as exc:  # orjson's errors are among these
                _log.error(
                    "audit entry of request %r not stored (%s): counted as dropped", entry.request_id, exc
                )
                bad, bad_time = bad + 1, bad_time or time.time()
                continue
            rows.append(row)
            seq, prev = row[0], row[-1]
        if bad:
            rows.append(_chained(seq + 1, prev, _gap(bad, bad_time, UNSTORABLE)))
            seq, prev = rows[-1][0], rows[-1][-1]
        db.executemany(_INSERT, rows)
        db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (("head_seq", str(seq)), ("head_hash", prev)),
        )
        db.execute("COMMIT")
        return bad
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


def _decoded(row: Sequence[Any]) -> dict[str, Any]:
    out = dict(zip(COLUMNS, row, strict=True))
    for i in _LISTS:
        try:
            out[COLUMNS[i]] = orjson.loads(row[i])
        except orjson.JSONDecodeError:
            out[COLUMNS[i]] = [str(row[i])]
    return out


def _open_for_writing(path: Path, durable: bool) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # one thread at a time uses it: this one, then the writer thread, then close()
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise GatewayError(f"{path}: cannot open the audit log ({exc})") from None
    try:
        db.execute("PRAGMA busy_timeout = 5000")  # other worker processes of the node
        if str(db.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower() != "wal":
            raise GatewayError(f"{path}: the audit log needs WAL mode, which this file system refuses")
        db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        db.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA:
            db.execute(statement)
        found = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if found is None:
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                (("format", FORMAT), ("head_seq", "0"), ("head_hash", ZERO_HASH)),
            )
        db.execute("COMMIT")
        if found is not None and found[0] != FORMAT:
            raise GatewayError(f"{path}: audit log format {found[0]!r}; this node writes {FORMAT!r}")
    except sqlite3.Error as exc:
        db.close()
        raise GatewayError(f"{path}: not a usable audit log ({exc})") from None
    except GatewayError:
        db.close()
        raise
    return db


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
    try:
        db.execute("PRAGMA busy_timeout = 5000")
        yield db
    except sqlite3.Error as exc:
        raise GatewayError(f"{path}: not a readable audit log ({exc})") from None
    finally:
        db.close()
