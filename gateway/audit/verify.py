"""Checking and reading an audit log: recompute the chain, show the latest entries.

``verify`` recomputes every hash, each batch by the rule of its format (3, or 2 for the
batches a log of format 2 held when it went on as 3): an edited, removed or reordered
entry, or an edited list that many entries share, breaks its batch's hash; an entry
naming a list its batch does not hold is reported (never followed); a removed or moved
batch breaks the ``first`` sequence or the next ``prev``. Deleting the *last* batches
leaves a valid shorter chain; the head in ``meta`` catches that, unless whoever deleted
them also rewrote ``meta``. The chain cannot stop someone who may write the file and
rewrites it all; the full answer is an external anchor: export ``head(path)`` now and
then (to another party, a ticket, a printed report) and pass it to
``verify(path, anchor=...)``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.audit.format import (
    COLUMNS,
    CONTINUED,
    DROPPED_PATH,
    FORMAT,
    LAST,
    LISTED,
    ZERO_HASH,
    Entry,
    link,
)
from gateway.errors import GatewayError

__all__ = ["VerifyReport", "format_entry", "head", "tail", "verify"]

_MAX_PROBLEMS = 100
_UNREADABLE = "audit:unreadable"
_AT = tuple(Entry._fields.index(name) for name in LISTED)  # where an entry names its lists


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """``ok`` when every hash, link and the head agree; else ``problems`` name each seq."""

    ok: bool
    entries: int
    problems: list[str]
    head: tuple[int, str]  # the last entry's (seq, hash) as found
    #: the gap entries (reads the log says it could not record), one line each
    gaps: tuple[str, ...] = ()
    #: how many reads those gap entries account for
    unrecorded: int = 0


def verify(path: Path, *, anchor: tuple[int, str] | None = None) -> VerifyReport:
    """Recompute the chain; each problem names the entries (seqs) and what is wrong.

    ``anchor`` is a ``(seq, hash)`` exported earlier with ``head``: that batch must still
    be there unchanged, ending at that seq, which catches a log rewritten or cut off
    after the export.
    """
    with _reading(path) as db:
        db.execute("BEGIN")  # one snapshot: the head is read with the batches it covers
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        walk = _Chain(anchor, _format3_from(meta))
        query = f"SELECT first, count, entries, prev, hash, {_lists(db)} FROM batches ORDER BY first"  # noqa: S608 (a column)
        for row in db.execute(query):
            walk.batch(*row)
        db.execute("COMMIT")
    problems = walk.problems
    if walk.since is None:
        problems.insert(0, f"format3_from {meta.get('format3_from')!r} is not a seq (meta edited)")
    last = (walk.expected - 1, walk.prev)
    problems.extend(_check_head(meta, last))
    if not walk.anchored and anchor is not None:
        problems.append(f"seq {anchor[0]}: the anchored entry is missing (cut off)")
    if len(problems) > _MAX_PROBLEMS:
        problems[_MAX_PROBLEMS:] = [f"... and {len(problems) - _MAX_PROBLEMS} more problems"]
    return VerifyReport(
        ok=not problems,
        entries=walk.count,
        problems=problems,
        head=last,
        gaps=tuple(line for line, _ in walk.gaps),
        unrecorded=sum(n for _, n in walk.gaps),
    )


class _Chain:
    """What ``verify`` has found so far, batch by batch."""

    def __init__(self, anchor: tuple[int, str] | None, since: int | None) -> None:
        self.anchor = anchor
        #: the first seq stored in format 3; None: meta does not say (a problem)
        self.since = since
        self.problems: list[str] = []
        self.gaps: list[tuple[str, int]] = []
        self.count, self.expected, self.prev = 0, 1, ZERO_HASH
        self.anchored = anchor is None

    def batch(self, first: Any, size: Any, text: Any, stored_prev: Any, stored_hash: Any, lists: Any) -> None:
        span = _span(first, size)
        held, unresolved = _batch(text, lists)
        if not isinstance(size, int) or size < 1:
            self.problems.append(f"{span}: its count {size!r} is not a count of entries (edited)")
            size = len(held or ())
        self._form(span, first, lists)
        self._links(span, first, text, stored_prev, stored_hash, lists)
        if held is None or len(held) != size:
            self.problems.append(f"{span}: does not hold {size} entries as its count says (edited)")
        self.problems.extend(
            f"seq {first + i}: names a list its batch does not hold (edited)" for i in unresolved
        )
        self.gaps.extend(_gaps(first, held or []))
        self._anchor(span, first, size, stored_hash)
        self.count += size
        self.expected, self.prev = first + size, stored_hash

    def _form(self, span: str, first: int, lists: Any) -> None:
        """A batch from ``format3_from`` on has its lists apart; one before it has none."""
        if self.since is not None and (lists is None) != (first < self.since):
            held = "no lists" if lists is None else "lists"
            self.problems.append(f"{span}: holds {held}, unlike a batch of its format (edited)")

    def _links(
        self, span: str, first: Any, text: Any, stored_prev: Any, stored_hash: Any, lists: Any
    ) -> None:
        if first < self.expected:
            self.problems.append(f"{span}: overlaps the entries before it (the log starts at 1)")
        elif first > self.expected:
            self.problems.append(f"{_span(self.expected, first - self.expected)}: missing")
        if stored_prev != self.prev:
            self.problems.append(f"{span}: prev is not the hash of the batch before it (removed or moved)")
        if link(stored_prev, text, lists) != stored_hash:
            self.problems.append(f"{span}: hash does not match the content (edited)")

    def _anchor(self, span: str, first: int, size: int, stored_hash: Any) -> None:
        anchor = self.anchor
        if anchor is not None and first <= anchor[0] < first + size:
            self.anchored = True
            if stored_hash != anchor[1] or anchor[0] != first + size - 1:
                self.problems.append(f"{span}: differs from the anchor {anchor[0]}:{anchor[1]} (rewritten)")


def _gaps(first: int, held: list[Any]) -> list[tuple[str, int]]:
    """The gap entries of one batch: (a line naming seq, count and why, the count)."""
    out = []
    for i, fields in enumerate(held):
        if isinstance(fields, list) and len(fields) == len(Entry._fields):
            row = Entry(*fields)
            if row.caller == "dsgo" and row.path == DROPPED_PATH and isinstance(row.withheld, int):
                out.append(
                    (f"seq {first + i}: {row.withheld} reads not recorded ({row.purpose})", row.withheld)
                )
    return out


def head(path: Path) -> tuple[int, str]:
    """The last entry's ``(seq, hash)``: export it now and then as an external anchor."""
    with _reading(path) as db:
        row = db.execute(LAST).fetchone()
    return (int(row[0]), str(row[1])) if row else (0, ZERO_HASH)


def tail(path: Path, n: int = 20) -> list[dict[str, Any]]:
    """The latest ``n`` entries, oldest first, as dicts of ``COLUMNS``.

    An entry that is not what the writer stores (the file was edited) is shown with path
    ``audit:unreadable``; ``verify`` says what is wrong."""
    out: list[dict[str, Any]] = []
    with _reading(path) as db:
        db.execute("BEGIN")
        query = f"SELECT first, entries, {_lists(db)} FROM batches ORDER BY first DESC"  # noqa: S608 (a column)
        for first, text, lists in db.execute(query):
            if len(out) >= n:
                break
            held = _batch(text, lists)[0] or [None]
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


def _span(first: Any, size: Any) -> str:
    if isinstance(first, int) and isinstance(size, int) and size > 1:
        return f"seq {first}..{first + size - 1}"
    return f"seq {first}"


def _batch(text: Any, lists: Any) -> tuple[list[Any] | None, list[int]]:
    """A stored batch's entries with their lists resolved (None if it is not a JSON array),
    and the offsets of the entries that name a list it does not hold (each is None).

    ``lists`` None: a batch of format 2, whose entries hold their lists themselves."""
    held = _json_array(text)
    if held is None or lists is None:
        return held, []
    shared = _json_array(lists)
    unresolved = []
    for i, fields in enumerate(held):
        resolved = _resolve(fields, shared)
        if resolved is None:
            unresolved.append(i)
        held[i] = resolved
    return held, unresolved


def _resolve(fields: Any, lists: list[Any] | None) -> list[Any] | None:
    """An entry with the lists it names by index, or None if one is not in ``lists``."""
    if not isinstance(fields, list) or len(fields) != len(Entry._fields):
        # not an entry: shown unreadable, and its batch's hash says edited
        return typing.cast("list[Any] | None", fields)
    out = list(fields)
    for at in _AT:
        index = fields[at]
        if lists is None or type(index) is not int or not 0 <= index < len(lists):
            return None
        out[at] = lists[index]
    return out


def _json_array(text: Any) -> list[Any] | None:
    try:
        held = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return None
    return held if isinstance(held, list) else None


def _lists(db: sqlite3.Connection) -> str:
    """The ``lists`` column, or NULL in a log of format 2 that no dsgo of format 3 opened."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(batches)")}
    return "lists" if "lists" in columns else "NULL"


def _format3_from(meta: Mapping[str, str]) -> int | None:
    """Where format 3 begins: 1 for a log begun in it; past the end in a log of format 2."""
    if meta.get("format") == CONTINUED:
        return 2**63
    try:
        return int(meta.get("format3_from", ""))
    except ValueError:
        return None


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


def _check_head(meta: Mapping[str, str], last: tuple[int, str]) -> list[str]:
    if meta.get("format") not in (FORMAT, CONTINUED):
        found = meta.get("format")
        return [f"format {found!r} is not {FORMAT!r} or {CONTINUED!r} (meta edited, or not an audit log)"]
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
