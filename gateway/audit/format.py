"""The audit log's file format: one SQLite file of hash-chained batches of entries.

Schema (``FORMAT`` 3)::

    batches(first INTEGER PRIMARY KEY,   seq of its first entry: 1, then previous first + count
            count INTEGER,               how many entries it holds
            entries TEXT,                JSON array of entries, each an array of the fields of
                                         ``Entry`` in order: time (seconds since the epoch,
                                         UTC), request_id, caller, path, resources (IRIs
                                         read), released (field IRIs), withheld (a count),
                                         rules (granting rule ids), purpose; each list field
                                         as the index of its list in ``lists``
            prev TEXT,                   the hash of the batch before (64 zeros for the first)
            hash TEXT,                   sha256 hex, see below
            lists TEXT)                  JSON array of the distinct lists its entries name
                                         (resources, released, rules), each once
    meta(key TEXT PRIMARY KEY, value TEXT)   format, format3_from, head_seq, head_hash
    VIEW entries(seq, time, request_id, caller, path, resources, released, withheld, rules,
                 purpose, batch)         one row per entry, lists resolved, for operators' SQL

The chain: ``hash = sha256(prev + N + ":" + lists + entries)``, ``prev`` as its 64 ASCII
hex digits, ``N`` the byte length of ``lists`` in decimal (so no byte can move between
the two unnoticed), ``lists`` and ``entries`` as the UTF-8 bytes stored, exactly as they
are: nothing is re-encoded to check it. Each batch reads the last batch inside its
``BEGIN IMMEDIATE`` transaction, so the chain continues across restarts and across the
worker processes of one node sharing the file. The same transaction records the new
head (last seq and hash) in ``meta``.

Why lists apart: a read names the same lists as the reads before it (a grant releases
the same fields on every read of its resources: 48 field IRIs, 2 kB of JSON), so a batch
that repeated them per entry spent most of its encoding, hash and disk writes on copies
(format 2: 2.1 kB and 4.4 µs of the writer's CPU per read, half a cached read served in
process; format 3: about 100 B and under 1 µs, ``bench/bench_audit.py``).

Format 2 (``dsgo`` before the lists) stored no ``lists``: its list fields held the lists
themselves and ``hash = sha256(prev + entries)``. Opening such a log for writing keeps
it and its chain: it gains the ``lists`` column (NULL in its format-2 batches), the view
reads both, ``meta`` says format 3 and ``format3_from`` the seq of its first format-3
batch, and the chain goes on. ``verify`` checks each batch by its own rule, so old
entries are never lost, and a dsgo of format 2 refuses the file instead of misreading it.

Why per batch and not per entry: the chain must cover every entry, and it does (an entry
edited, removed or moved changes its batch's bytes). But a canonical form, a hash and a
row per entry cost 5 to 12 µs of CPU per read (format 1 did that), a third of a cached
read served in process, while a batch costs its JSON encoding and hash and its share of
one row (under 1 µs per entry all told).

Opening a file for writing creates it, or checks its format: a log of format 2 goes on
as above; one of format 1 (a row per entry) is moved aside (renamed, unchanged) and a new
one begins; an unknown format, or a SQLite file with other tables, is refused and left as
it was.

Sessions. Each writer (each worker process of a node) keeps a marker in ``meta``
(``session:<id>``: its pid, host and start) while it runs, and removes it when it closes
with everything written. Writing the marker is the first write of a run, so a log the
node cannot write stops it at start. A marker whose process is gone is a run that ended
with reads possibly unwritten (killed, or stopped while the disk refused): the next
writer to start appends a gap entry for it, with the exact count if that run could
leave one in ``<log>.unwritten`` (JSON, beside the log), else the bound (its queue's
size), before anything else.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import math
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from gateway.errors import GatewayError

__all__ = [
    "COLUMNS",
    "DROPPED_PATH",
    "FORMAT",
    "LAST",
    "LISTED",
    "QUEUE_FULL",
    "UNCLOSED",
    "UNSTORABLE",
    "ZERO_HASH",
    "Entry",
    "Row",
    "append",
    "begin_session",
    "end_session",
    "gap",
    "link",
    "open_for_writing",
]

FORMAT = "3"
#: the format whose logs go on in this one: its batches keep their rule (see above)
CONTINUED = "2"
ZERO_HASH = "0" * 64
DROPPED_PATH = "audit:dropped"
QUEUE_FULL, UNSTORABLE = "queue full", "could not be stored"  # a gap entry's purpose: why
UNCLOSED = "the run ended with reads unwritten"
LAST = "SELECT first + count - 1, hash FROM batches ORDER BY first DESC LIMIT 1"
_OLDER_FORMATS = frozenset({"1"})  # an existing log of these is moved aside: a new one begins
#: the fields stored as an index into the batch's ``lists``
LISTED = ("resources", "released", "rules")
_log = logging.getLogger("gateway.audit")
_LIVE: set[str] = set()  # the session markers of this process's open writers


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


def _column(i: int, name: str) -> str:
    """The view's column ``name``: a list field from ``lists`` (or, in a batch of format 2,
    from the entry itself), any other field as it is."""
    if name not in LISTED:
        return f"e.value ->> {i} AS {name}"
    return f"CASE WHEN b.lists IS NULL THEN e.value -> {i} ELSE b.lists -> (e.value ->> {i}) END AS {name}"


_VIEW = (
    "CREATE VIEW IF NOT EXISTS entries AS SELECT b.first + e.key AS seq, "  # noqa: S608 (constants)
    + ", ".join(_column(i, name) for i, name in enumerate(Entry._fields))
    + ", b.first AS batch FROM batches AS b, json_each(b.entries) AS e"
)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS batches (first INTEGER PRIMARY KEY, count INTEGER NOT NULL,"
    " entries TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL, lists TEXT)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    _VIEW,
)


def gap(count: int, when: float, why: str) -> Entry:
    """The entry that records ``count`` reads lost (``withheld`` holds the count)."""
    return Entry(when, "", "dsgo", DROPPED_PATH, (), (), count, (), why)


def link(prev: Any, text: Any, lists: Any = None) -> str | None:
    """A batch's hash, hex: ``sha256(prev + N + ":" + lists + entries)``, or with ``lists``
    None (a batch of format 2) ``sha256(prev + entries)``; None for what cannot be a batch."""
    if not isinstance(prev, str) or not isinstance(text, str | bytes):
        return None
    if lists is not None and not isinstance(lists, str | bytes):
        return None
    chain = hashlib.sha256(prev.encode())
    if lists is not None:
        held = _bytes(lists)
        chain.update(b"%d:" % len(held))
        chain.update(held)
    chain.update(_bytes(text))
    return chain.hexdigest()


def _bytes(text: str | bytes) -> bytes:
    return text.encode(errors="surrogateescape") if isinstance(text, str) else text


def _encode(entries: Sequence[Row]) -> tuple[bytes, bytes, int, list[str]]:
    """A batch as stored: its lists and entries (JSON bytes), how many entries it holds,
    and one problem per entry that could not be stored (they are replaced by one gap entry
    at the end)."""
    rows: list[tuple[Any, ...]] = list(map(tuple, entries))  # an Entry as a plain tuple
    # orjson.JSONEncodeError is a TypeError; a row of other than 9 fields a ValueError
    with contextlib.suppress(TypeError, ValueError):
        if all(map(math.isfinite, [row[0] for row in rows])):
            return (*_pack(rows), [])
    kept, problems = [], []
    for row in rows:  # the rare slow path: find the culprits
        try:
            if len(row) != len(Entry._fields):
                raise ValueError(f"{len(row)} fields, not {len(Entry._fields)}")
            if not math.isfinite(row[0]):
                raise ValueError("time must be a finite number")
            orjson.dumps(row)
        except (TypeError, ValueError) as exc:
            request = row[1] if len(row) > 1 else None
            problems.append(f"audit entry of request {request!r} not stored ({exc}): counted as dropped")
            continue
        kept.append(row)
    if problems:
        kept.append(tuple(gap(len(problems), time.time(), UNSTORABLE)))
    return (*_pack(kept), problems)


def _pack(rows: list[tuple[Any, ...]]) -> tuple[bytes, bytes, int]:
    """The lists (each distinct one once) and the entries naming them by index, as JSON.

    The reads of a batch hand in the same few tuples (a cached representation's), so each
    is looked up by identity first and its value hashed once. Only tuples of strings are
    shared by value: ``(1,)`` and ``(True,)`` are equal keys, but not the same JSON."""
    lists: list[Any] = []
    by_id: dict[int, int] = {}  # the rows keep each value alive, so its id stays its own
    by_value: dict[tuple[str, ...], int] = {}

    def index(value: Any) -> int:
        found = by_id.get(id(value))
        if found is None:
            found = len(lists)
            if type(value) is tuple and all(type(item) is str for item in value):
                found = by_value.setdefault(value, found)
            if found == len(lists):
                lists.append(value)
            by_id[id(value)] = found
        return found

    packed = []
    # each column's list as in the row before, else looked up: consecutive reads mostly repeat
    last_resources = last_released = last_rules = at_resources = at_released = at_rules = None
    for when, request_id, caller, path, resources, released, withheld, rules, purpose in rows:
        if resources is not last_resources:
            last_resources, at_resources = resources, index(resources)
        if released is not last_released:
            last_released, at_released = released, index(released)
        if rules is not last_rules:
            last_rules, at_rules = rules, index(rules)
        packed.append(
            (when, request_id, caller, path, at_resources, at_released, withheld, at_rules, purpose)
        )
    return orjson.dumps(lists), orjson.dumps(packed), len(packed)


def append(db: sqlite3.Connection, entries: Sequence[Row]) -> list[str]:
    """One transaction: the batch after the last one, and the head moved to its end.

    Returns one problem per entry that could not be stored (see ``_encode``)."""
    with _transaction(db):
        return _append(db, entries)


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")  # the write lock first: other workers append to this file too
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _append(db: sqlite3.Connection, entries: Sequence[Row]) -> list[str]:
    lists, blob, size, problems = _encode(entries)
    last = db.execute(LAST).fetchone()
    seq, prev = (int(last[0]), str(last[1])) if last else (0, ZERO_HASH)
    digest = link(prev, blob, lists)
    db.execute(  # TEXT, so that SQLite's JSON functions read them (the view)
        "INSERT INTO batches (first, count, entries, prev, hash, lists) VALUES (?, ?, ?, ?, ?, ?)",
        (seq + 1, size, blob.decode(), prev, digest, lists.decode()),
    )
    db.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        (("head_seq", str(seq + size)), ("head_hash", digest)),
    )
    return problems


def begin_session(db: sqlite3.Connection, path: Path, bound: int) -> str:
    """Record this writer's marker (the write that proves the log writable), after a gap
    entry for each run that ended without closing; returns the marker's key."""
    key = f"session:{os.urandom(8).hex()}"
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "bound": bound}
    spilled = _read_spill(path)
    with _transaction(db):
        gaps = []
        for other, value in db.execute("SELECT key, value FROM meta WHERE key LIKE 'session:%'").fetchall():
            ended = None if other in _LIVE else _ended(value)
            if ended is not None:
                gaps.append(_unclosed_gap(ended, spilled.get(other)))
                db.execute("DELETE FROM meta WHERE key = ?", (other,))
        if gaps:
            _append(db, gaps)
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, orjson.dumps(info).decode())
        )
    _LIVE.add(key)
    if spilled and gaps:
        with contextlib.suppress(OSError):
            _spill_path(path).unlink()
    return key


def end_session(db: sqlite3.Connection, path: Path, key: str, unwritten: int, times: Sequence[Any]) -> None:
    """Remove this writer's marker once all is written; if ``unwritten`` reads (recorded
    at ``times``) are left, try to leave their count beside the log for the next start
    (the marker stays either way)."""
    _LIVE.discard(key)
    if not unwritten:
        with _transaction(db):
            db.execute("DELETE FROM meta WHERE key = ?", (key,))
        return
    finite = [float(t) for t in times if isinstance(t, int | float) and math.isfinite(t)]
    spill = _read_spill(path)
    spill[key] = {"count": unwritten, "first": min(finite, default=0.0), "last": max(finite, default=0.0)}
    _spill_path(path).write_bytes(orjson.dumps(spill))


def _ended(value: str) -> dict[str, Any] | None:
    """A marker's content if its writer is gone (a process of this host that no longer
    runs, or this process's pid on a marker none of its writers holds: a pid reused after a
    restart, as in a container); None if it may still write."""
    try:
        info = orjson.loads(value)
        pid, host = int(info["pid"]), str(info["host"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return {"started": 0.0, "bound": 0}
    if host != socket.gethostname():
        return None  # another machine's writer: it closes its own
    if pid == os.getpid():
        return dict(info)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return dict(info)
    except PermissionError:
        pass
    return None


def _unclosed_gap(info: dict[str, Any], spilled: Any) -> Entry:
    started = float(info.get("started") or 0.0)
    if isinstance(spilled, dict) and isinstance(spilled.get("count"), int):
        first, last = float(spilled.get("first") or started), float(spilled.get("last") or started)
        why = f"{UNCLOSED}: {spilled['count']} reads between {_iso(first)} and {_iso(last)}"
        return gap(spilled["count"], first, why)
    bound = int(info.get("bound") or 0)
    why = f"{UNCLOSED}: at most {bound} reads (its queue) of the run started {_iso(started)}"
    return gap(bound, started, why)


def _spill_path(path: Path) -> Path:
    return path.with_name(path.name + ".unwritten")


def _read_spill(path: Path) -> dict[str, Any]:
    try:
        found = orjson.loads(_spill_path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return found if isinstance(found, dict) else {}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def open_for_writing(path: Path, durable: bool) -> sqlite3.Connection:
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


def _continue(db: sqlite3.Connection, path: Path) -> None:
    """A log of format 2 goes on as format 3 (in the caller's transaction): its batches
    stay as they are, with NULL ``lists``; ``format3_from`` says where the new ones start."""
    last = db.execute(LAST).fetchone()
    after = int(last[0]) + 1 if last else 1
    db.execute("ALTER TABLE batches ADD COLUMN lists TEXT")
    db.execute("DROP VIEW IF EXISTS entries")
    db.execute(_VIEW)
    db.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        (("format", FORMAT), ("format3_from", str(after))),
    )
    _log.warning(
        "%s: the audit log of format %r goes on in format %r from seq %d; its entries and chain"
        " are kept, and a dsgo of format %r no longer opens it",
        path,
        CONTINUED,
        FORMAT,
        after,
        CONTINUED,
    )


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
        if found == CONTINUED:
            _continue(db, path)
            found = FORMAT
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
                (("format", FORMAT), ("format3_from", "1"), ("head_seq", "0"), ("head_hash", ZERO_HASH)),
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
