"""The audit log: reads are written off the request path in hash-chained batches, verify
catches every edit, removal, reordering and cut, a crash never breaks the chain,
withheld values have no place in it."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.audit import (
    COLUMNS,
    DROPPED_PATH,
    ZERO_HASH,
    AuditLog,
    Entry,
    VerifyReport,
    format_entry,
    head,
    tail,
    verify,
)
from gateway.cli import audit as audit_cli
from gateway.errors import GatewayError

PARTY = "EU.EORI.NL000000001"
DATA = ("resources", "released", "withheld", "rules", "purpose")


def entry(i: int, **changes: Any) -> Entry:
    base = Entry(
        time=1_700_000_000.0 + i,
        request_id=f"req-{i}",
        caller=PARTY,
        path=f"/id/building/{i}",
        resources=(f"https://data.test.example/id/building/{i}",),
        released=("http://www.w3.org/2000/01/rdf-schema#label", "https://vocab.dsgo.example/def#energyLabel"),
        withheld=3,
        rules=("rule-1",),
        purpose="maintenance",
    )
    return base._replace(**changes)


def filled(path: Path, n: int, first: int = 1, per_batch: int = 1000) -> Path:
    """A log of entries ``first`` .. ``first + n - 1`` in batches of ``per_batch``, written by close()."""
    log = AuditLog(path, max_batch=per_batch)
    for i in range(first, first + n):
        log.record(entry(i))
    log.close()
    return path


def sql(path: Path, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        return db.execute(statement, params).fetchall()


def rows(path: Path) -> list[tuple[Any, ...]]:
    """One per entry, from the ``entries`` view."""
    return sql(path, f"SELECT {', '.join(COLUMNS)} FROM entries ORDER BY seq")


def batches(path: Path) -> list[tuple[Any, ...]]:
    return sql(path, "SELECT first, count, entries, prev, hash, lists FROM batches ORDER BY first")


def chain_hash(prev: str, stored: str, lists: str | None) -> str:
    """The documented rule, written independently: sha256(prev + len(lists) + ":" + lists +
    entries), or for a batch of format 2 (no lists) sha256(prev + entries)."""
    if lists is None:
        return hashlib.sha256(prev.encode() + stored.encode()).hexdigest()
    held = lists.encode()
    return hashlib.sha256(prev.encode() + str(len(held)).encode() + b":" + held + stored.encode()).hexdigest()


def rechain(path: Path) -> None:
    """What an attacker with write access does: recompute every hash and the head."""
    prev, end = ZERO_HASH, 0
    for first, size, stored, _, _, lists in batches(path):
        digest = chain_hash(prev, stored, lists)
        sql(path, "UPDATE batches SET prev = ?, hash = ? WHERE first = ?", (prev, digest, first))
        prev, end = digest, first + size - 1
    sql(path, "UPDATE meta SET value = ? WHERE key = 'head_seq'", (str(end),))
    sql(path, "UPDATE meta SET value = ? WHERE key = 'head_hash'", (prev,))


def edit(path: Path, json_path: str, value: object) -> None:
    """Change one field of one stored entry, as someone with the file and sqlite3 would."""
    sql(
        path,
        "UPDATE batches SET entries = json_set(entries, ?, json(?))",
        (json_path, orjson.dumps(value).decode()),
    )


def test_recorded_entries_are_written_by_the_running_writer_without_a_flush(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path, flush_interval=0.05) as log:
        for i in (1, 2, 3):
            log.record(entry(i))
        for _ in range(500):  # polling with a bound: the writer commits on its own
            if sql(path, "SELECT count(*) FROM entries") == [(3,)]:
                break
            time.sleep(0.01)
        written_while_open = sql(path, "SELECT count(*) FROM entries")
    assert written_while_open == [(3,)]
    assert verify(path) == VerifyReport(ok=True, entries=3, problems=[], head=head(path))
    assert head(path)[0] == 3


def test_each_batch_hash_is_sha256_of_prev_its_lists_and_its_entries_as_stored(tmp_path: Path) -> None:
    stored = batches(filled(tmp_path / "audit.sqlite", 4, per_batch=2))
    assert [(b[0], b[1]) for b in stored] == [(1, 2), (3, 2)]
    assert stored[0][3] == ZERO_HASH
    assert stored[0][4] == chain_hash(ZERO_HASH, stored[0][2], stored[0][5])
    assert stored[1][3] == stored[0][4]
    assert stored[1][4] == chain_hash(stored[0][4], stored[1][2], stored[1][5])
    assert head(tmp_path / "audit.sqlite") == (4, stored[1][4])


def test_the_entries_view_has_one_row_per_entry(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 3, per_batch=2)
    assert [(r[0], r[2], r[COLUMNS.index("withheld")]) for r in rows(path)] == [
        (1, "req-1", 3),
        (2, "req-2", 3),
        (3, "req-3", 3),
    ]
    assert sql(path, "SELECT seq FROM entries WHERE request_id = 'req-2'") == [(2,)]


def test_the_chain_continues_across_close_and_reopen(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 2)
    filled(path, 1, first=3)
    assert [r[2] for r in rows(path)] == ["req-1", "req-2", "req-3"]
    assert [(b[0], b[1]) for b in batches(path)] == [(1, 2), (3, 1)]
    assert batches(path)[1][3] == batches(path)[0][4]
    assert verify(path).ok


def test_two_writers_on_one_file_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    first, second = AuditLog(path), AuditLog(path)  # as two worker processes of one node would
    for i in range(1, 7):
        (first if i % 2 else second).record(entry(i))
        assert (first if i % 2 else second).flush()
    first.close()
    second.close()
    assert [r[2] for r in rows(path)] == [f"req-{i}" for i in range(1, 7)]
    assert verify(path) == VerifyReport(ok=True, entries=6, problems=[], head=head(path))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("caller", "EU.EORI.NL000000666"),
        ("time", 1_600_000_000.0),
        ("resources", 3),  # the index of another list of its batch (seq 4's resources)
        ("withheld", 0),
        ("rules", 1),
        ("purpose", "marketing"),
    ],
)
def test_verify_reports_an_edited_field(tmp_path: Path, field: str, value: object) -> None:
    path = filled(tmp_path / "audit.sqlite", 4, per_batch=2)
    sql(
        path,
        "UPDATE batches SET entries = json_set(entries, ?, json(?)) WHERE first = 3",
        (f"$[0][{Entry._fields.index(field)}]", orjson.dumps(value).decode()),
    )
    assert (
        rows(path)[2][COLUMNS.index(field)]
        != rows(filled(tmp_path / "copy.sqlite", 4))[2][COLUMNS.index(field)]
    )
    report = verify(path)
    assert report.problems == ["seq 3..4: hash does not match the content (edited)"]
    assert (report.ok, report.entries) == (False, 4)


def test_verify_reports_an_entry_removed_from_a_batch(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 4, per_batch=2)
    sql(path, "UPDATE batches SET entries = json_remove(entries, '$[1]') WHERE first = 1")
    assert [r[2] for r in rows(path)] == ["req-1", "req-3", "req-4"]
    assert verify(path).problems == [
        "seq 1..2: hash does not match the content (edited)",
        "seq 1..2: does not hold 2 entries as its count says (edited)",
    ]


def test_verify_reports_two_entries_swapped_within_a_batch(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 4, per_batch=2)
    sql(
        path,
        "UPDATE batches SET entries = json_array(json_extract(entries, '$[1]'), json_extract(entries, '$[0]'))"
        " WHERE first = 3",
    )
    assert [r[2] for r in rows(path)] == ["req-1", "req-2", "req-4", "req-3"]
    assert verify(path).problems == ["seq 3..4: hash does not match the content (edited)"]


def test_verify_reports_a_removed_middle_batch(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 6, per_batch=2)
    sql(path, "DELETE FROM batches WHERE first = 3")
    report = verify(path)
    assert report.problems == [
        "seq 3..4: missing",
        "seq 5..6: prev is not the hash of the batch before it (removed or moved)",
    ]
    assert (report.ok, report.entries) == (False, 4)


def test_verify_reports_two_batches_with_swapped_places(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 6, per_batch=2)
    sql(path, "UPDATE batches SET first = -1 WHERE first = 1")
    sql(path, "UPDATE batches SET first = 1 WHERE first = 3")
    sql(path, "UPDATE batches SET first = 3 WHERE first = -1")
    assert verify(path).problems == [
        "seq 1..2: prev is not the hash of the batch before it (removed or moved)",
        "seq 3..4: prev is not the hash of the batch before it (removed or moved)",
        "seq 5..6: prev is not the hash of the batch before it (removed or moved)",
    ]


def test_verify_reports_a_wrong_count_and_bytes_that_are_not_text(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 4, per_batch=2)
    sql(path, "UPDATE batches SET count = 3 WHERE first = 1")
    sql(path, "UPDATE batches SET entries = CAST(X'5BFF5D' AS TEXT) WHERE first = 3")
    assert verify(path).problems == [
        "seq 1..3: does not hold 3 entries as its count says (edited)",
        "seq 3..4: overlaps the entries before it (the log starts at 1)",
        "seq 3..4: hash does not match the content (edited)",
        "seq 3..4: does not hold 2 entries as its count says (edited)",
    ]
    assert [r["path"] for r in tail(path, 1)] == ["audit:unreadable"]


def test_verify_reports_entries_cut_off_the_end_by_the_recorded_head(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 6, per_batch=2)
    sql(path, "DELETE FROM batches WHERE first = 5")
    report = verify(path)
    assert report.problems == ["seq 5..6: missing at the end (the recorded head is seq 6)"]
    assert (report.ok, report.entries, report.head[0]) == (False, 4, 4)


def test_verify_reports_a_rechained_log_only_against_an_exported_anchor(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 4, per_batch=2)
    anchor = head(path)
    edit(path, "$[1][2]", "EU.EORI.NL000000666")
    rechain(path)
    assert verify(path).ok  # the chain alone cannot tell: hence the external anchor
    assert verify(path, anchor=anchor).problems == [
        f"seq 3..4: differs from the anchor 4:{anchor[1]} (rewritten)"
    ]


def test_verify_reports_a_cut_whose_head_was_rewritten_against_an_anchor(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 6, per_batch=2)
    anchor = head(path)
    sql(path, "DELETE FROM batches WHERE first = 5")
    rechain(path)
    assert verify(path, anchor=anchor).problems == ["seq 6: the anchored entry is missing (cut off)"]


def test_verify_refuses_a_missing_file_without_creating_it(tmp_path: Path) -> None:
    path = tmp_path / "nothing.sqlite"
    with pytest.raises(GatewayError) as caught:
        verify(path)
    assert caught.value.detail == f"{path}: no audit log here"
    assert not path.exists()


def format_1_log(path: Path) -> None:
    """What the dsgo before format 2 left: a row per entry and a head in meta."""
    sql(path, "CREATE TABLE entries (seq INTEGER PRIMARY KEY, caller TEXT, hash TEXT)")
    sql(path, "INSERT INTO entries VALUES (1, 'EU.EORI.NL000000003', 'abc')")
    sql(path, "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    sql(path, "INSERT INTO meta VALUES ('format', '1'), ('head_seq', '1'), ('head_hash', 'abc')")


def test_a_log_of_the_older_format_is_moved_aside_untouched_and_a_new_one_begins(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.sqlite"
    format_1_log(path)
    with caplog.at_level(logging.WARNING, logger="gateway.audit"):
        filled(path, 2)
    aside = tmp_path / "audit.sqlite.format1"
    assert sql(aside, "SELECT * FROM entries") == [(1, "EU.EORI.NL000000003", "abc")]
    assert f"the audit log of format '1' there (head 1:abc) was moved to {aside}, unchanged" in caplog.text
    assert [r[2] for r in rows(path)] == ["req-1", "req-2"]
    assert verify(path).ok
    format_1_log(tmp_path / "again.sqlite")
    (tmp_path / "again.sqlite.format1").write_text("taken")
    filled(tmp_path / "again.sqlite", 1)
    assert (tmp_path / "again.sqlite.format1").read_text() == "taken"  # never overwritten
    assert sql(tmp_path / "again.sqlite.format1.2", "SELECT caller FROM entries") == [
        ("EU.EORI.NL000000003",)
    ]


def test_a_list_shared_by_many_entries_is_stored_once_and_its_edit_breaks_the_hash(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 4)
    lists = orjson.loads(batches(path)[0][5])
    assert len(lists) == 6  # four resources, then the released fields and the rules all four share
    assert [r[COLUMNS.index("released")] for r in rows(path)] == [orjson.dumps(lists[1]).decode()] * 4
    sql(path, "UPDATE batches SET lists = json_set(lists, '$[1][0]', 'https://evil.example/x')")
    assert {orjson.loads(r[COLUMNS.index("released")])[0] for r in rows(path)} == {"https://evil.example/x"}
    assert verify(path).problems == ["seq 1..4: hash does not match the content (edited)"]


@pytest.mark.parametrize("index", [6, -1, "1", 1.0, True, None, [1]])
def test_an_entry_naming_a_list_its_batch_does_not_hold_is_a_verify_problem(
    tmp_path: Path, index: object
) -> None:
    path = filled(tmp_path / "audit.sqlite", 4)
    edit(path, f"$[1][{Entry._fields.index('released')}]", index)
    report = verify(path)
    assert report.problems == [
        "seq 1..4: hash does not match the content (edited)",
        "seq 2: names a list its batch does not hold (edited)",
    ]
    assert [r["path"] for r in tail(path)] == [
        "/id/building/1",
        "audit:unreadable",
        "/id/building/3",
        "/id/building/4",
    ]


@pytest.mark.parametrize("lists", ["not json", "{}", "[]", "[[]]"])
def test_entries_of_a_batch_whose_lists_are_not_theirs_are_verify_problems(
    tmp_path: Path, lists: str
) -> None:
    path = filled(tmp_path / "audit.sqlite", 2)
    sql(path, "UPDATE batches SET lists = ?", (lists,))
    assert verify(path).problems == [
        "seq 1..2: hash does not match the content (edited)",
        "seq 1: names a list its batch does not hold (edited)",
        "seq 2: names a list its batch does not hold (edited)",
    ]
    assert [r["path"] for r in tail(path)] == ["audit:unreadable"] * 2


def test_a_batch_whose_lists_were_removed_is_a_verify_problem(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 2)
    sql(path, "UPDATE batches SET lists = NULL")
    assert verify(path).problems == [
        "seq 1..2: holds no lists, unlike a batch of its format (edited)",
        "seq 1..2: hash does not match the content (edited)",
    ]


def format_2_log(path: Path, n: int) -> None:
    """What the dsgo of format 2 left: lists inside each entry, sha256(prev + entries)."""
    sql(
        path,
        "CREATE TABLE batches (first INTEGER PRIMARY KEY, count INTEGER NOT NULL,"
        " entries TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL)",
    )
    sql(path, "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    sql(
        path,
        "CREATE VIEW entries AS SELECT b.first + e.key AS seq, "
        + ", ".join(
            f"e.value {'->' if name in (*DATA[:2], 'rules') else '->>'} {i} AS {name}"
            for i, name in enumerate(Entry._fields)
        )
        + ", b.first AS batch FROM batches AS b, json_each(b.entries) AS e",
    )
    text = orjson.dumps([tuple(entry(i)) for i in range(1, n + 1)]).decode()
    digest = chain_hash(ZERO_HASH, text, None)
    sql(path, "INSERT INTO batches VALUES (1, ?, ?, ?, ?)", (n, text, ZERO_HASH, digest))
    sql(path, "INSERT INTO meta VALUES ('format', '2'), ('head_seq', ?), ('head_hash', ?)", (str(n), digest))


def test_a_log_of_format_2_is_read_and_verified_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    format_2_log(path, 3)
    assert verify(path) == VerifyReport(ok=True, entries=3, problems=[], head=head(path))
    assert [r["resources"] for r in tail(path, 1)] == [["https://data.test.example/id/building/3"]]
    edit(path, "$[0][4][0]", "https://evil.example/x")
    assert verify(path).problems == ["seq 1..3: hash does not match the content (edited)"]


def test_a_log_of_format_2_goes_on_in_format_3_keeping_its_entries_and_chain(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.sqlite"
    format_2_log(path, 2)
    old = sql(path, "SELECT first, count, entries, prev, hash FROM batches")[0]
    with caplog.at_level(logging.WARNING, logger="gateway.audit"):
        filled(path, 2, first=3)
    assert "the audit log of format '2' goes on in format '3' from seq 3" in caplog.text
    assert batches(path)[0] == (*old[:5], None)  # untouched
    assert batches(path)[1][3] == old[4]  # chained on
    assert sql(path, "SELECT key, value FROM meta WHERE key LIKE 'format%' ORDER BY key") == [
        ("format", "3"),
        ("format3_from", "3"),
    ]
    assert rows(path) == rows(filled(tmp_path / "new.sqlite", 4))  # the view reads both forms
    assert verify(path) == VerifyReport(ok=True, entries=4, problems=[], head=head(path))
    assert [r["resources"] for r in tail(path, 4)] == [
        [f"https://data.test.example/id/building/{i}"] for i in range(1, 5)
    ]
    sql(path, "UPDATE meta SET value = '1' WHERE key = 'format3_from'")
    assert verify(path).problems == ["seq 1..2: holds no lists, unlike a batch of its format (edited)"]


def test_a_log_of_an_unknown_format_or_another_database_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    sql(path, "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    sql(path, "INSERT INTO meta VALUES ('format', '9')")
    with pytest.raises(GatewayError) as caught:
        AuditLog(path)
    assert caught.value.detail == (
        f"{path}: audit log format '9', which this dsgo (format '3') does not know; a newer dsgo wrote it?"
        " Keep it as it is and give node.audit a new path"
    )
    assert sql(path, "SELECT name FROM sqlite_master") == [("meta",), ("sqlite_autoindex_meta_1",)]
    other = tmp_path / "shop.sqlite"
    sql(other, "CREATE TABLE orders (id INTEGER)")
    with pytest.raises(GatewayError, match="a SQLite file with other tables, not an audit log"):
        AuditLog(other)
    assert sql(other, "SELECT name FROM sqlite_master") == [("orders",)]


def test_record_only_queues_until_the_writer_runs(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path)  # not started: no writer thread
    log.record(entry(1))
    assert log.status().queued == 1
    assert sql(path, "SELECT count(*) FROM entries") == [(0,)]
    log.close()
    assert sql(path, "SELECT count(*) FROM entries") == [(1,)]


def record_many(log: AuditLog, numbers: range) -> None:
    for i in numbers:
        log.record(entry(i))


def test_record_does_not_wait_for_a_stalled_writer(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path, flush_interval=0.01)
    with log, contextlib.closing(sqlite3.connect(path, isolation_level=None)) as stall:
        stall.execute("BEGIN IMMEDIATE")  # the disk stalls: the writer cannot commit
        log.record(entry(0))
        for _ in range(500):  # until the writer has taken entry 0 and is stuck writing it
            if not log._queue:
                break
            time.sleep(0.01)
        assert not log._queue
        requests = threading.Thread(target=record_many, args=(log, range(1, 1001)))
        requests.start()
        requests.join(5)
        finished_while_stalled = not requests.is_alive()
        assert log.status().queued == 1001
        assert sql(path, "SELECT count(*) FROM entries") == [(0,)]
        stall.execute("COMMIT")
    assert finished_while_stalled
    assert verify(path).entries == 1001


def test_reads_recorded_from_many_threads_while_the_writer_runs_are_all_kept_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path, flush_interval=0.001, max_batch=700) as log:
        threads = [
            threading.Thread(target=record_many, args=(log, range(t * 5000, (t + 1) * 5000)))
            for t in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert log.flush()
        assert log.status().queued == 0
        assert head(path)[0] == 20_000  # flush covered every entry recorded before it
    assert sorted(r[2] for r in rows(path)) == sorted(f"req-{i}" for i in range(20_000))
    assert verify(path).ok


def test_a_full_queue_leaves_a_visible_gap_entry_and_still_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path, max_queue=3)
    for i in range(1, 6):
        log.record(entry(i))
    assert log.status().dropped == 2
    log.close()
    last = tail(path, 1)[0]
    assert (last["seq"], last["caller"], last["path"], last["withheld"], last["purpose"]) == (
        4,
        "dsgo",
        DROPPED_PATH,
        2,
        "queue full",
    )
    assert last["time"] == entry(4).time  # when the first read was dropped
    gaps = ("seq 4: 2 reads not recorded (queue full)",)
    assert verify(path) == VerifyReport(
        ok=True, entries=4, problems=[], head=head(path), gaps=gaps, unrecorded=2
    )


@pytest.mark.parametrize("started", [False, True], ids=["in process", "writer process"])
def test_an_entry_that_cannot_be_stored_becomes_a_gap_entry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, started: bool
) -> None:
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path)
    if started:
        log.start()
    log.record(entry(1))
    log.record(entry(2, time=float("nan")))
    log.record(entry(3))
    log.record(entry(4, path="/id/\udc80"))  # not UTF-8: cannot even be encoded
    with caplog.at_level(logging.ERROR, logger="gateway.audit"):
        log.close()
    assert [(r["request_id"], r["path"], r["withheld"], r["purpose"]) for r in tail(path)] == [
        ("req-1", "/id/building/1", 3, "maintenance"),
        ("req-3", "/id/building/3", 3, "maintenance"),
        ("", DROPPED_PATH, 2, "could not be stored"),
    ]
    assert "audit entry of request 'req-2' not stored" in caplog.text
    assert "audit entry of request 'req-4' not stored" in caplog.text
    assert log.status().dropped == 2
    assert verify(path).ok


def test_an_entry_of_other_than_nine_fields_becomes_a_gap_entry(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path) as log:
        log.record(entry(1))
        log.record(typing.cast("Entry", tuple(entry(2))[:8]))
        log.record(typing.cast("Entry", (*entry(3), "more")))
    assert [(r["request_id"], r["path"], r["withheld"]) for r in tail(path)] == [
        ("req-1", "/id/building/1", 3),
        ("", DROPPED_PATH, 2),
    ]
    assert verify(path).ok


def test_close_writes_everything_without_waiting_for_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path, flush_interval=60) as log:
        for i in range(1, 2501):
            log.record(entry(i))
    assert sql(path, "SELECT count(*), max(seq) FROM entries") == [(2500, 2500)]
    assert verify(path).ok


def test_record_after_close_raises(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.sqlite")
    log.close()
    with pytest.raises(RuntimeError, match="the audit log is closed"):
        log.record(entry(1))


_CHILD = textwrap.dedent(
    """
    import itertools, sys, time
    from pathlib import Path
    from gateway.audit import AuditLog, Entry

    log = AuditLog(Path(sys.argv[1]), flush_interval=0.005, max_batch=50)
    log.start()
    print("recording", flush=True)
    for i in itertools.count():
        log.record(Entry(time.time(), f"r{i}", "anonymous", "/id/building/1", ("https://x/1",), (), 1, (), ""))
        if i % 20 == 0:
            time.sleep(0.0005)
    """
)


def test_a_killed_node_leaves_a_log_that_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    before = 0
    for delay in (0.0, 0.02, 0.05):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).parent.parent,
        )
        try:
            assert child.stdout is not None and child.stdout.readline() == b"recording\n"
            deadline = time.monotonic() + 5
            while head(path)[0] <= before and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(delay)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
            assert child.stdout is not None
            child.stdout.close()
        report = verify(path)
        assert (report.ok, report.problems) == (True, [])
        assert report.entries > before
        before = report.entries


def test_the_log_has_no_place_for_withheld_values(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 1)
    assert [r[1] for r in sql(path, "PRAGMA table_info(batches)")] == [
        "first",
        "count",
        "entries",
        "prev",
        "hash",
        "lists",
    ]
    assert [r[1] for r in sql(path, "PRAGMA table_info(entries)")] == [*COLUMNS, "batch"]
    assert typing.get_type_hints(Entry)["withheld"] is int
    assert orjson.loads(batches(path)[0][2]) == [
        [1_700_000_001.0, "req-1", PARTY, "/id/building/1", 0, 1, 3, 2, "maintenance"]
    ]
    assert orjson.loads(batches(path)[0][5]) == [
        ["https://data.test.example/id/building/1"],
        ["http://www.w3.org/2000/01/rdf-schema#label", "https://vocab.dsgo.example/def#energyLabel"],
        ["rule-1"],
    ]


@pytest.mark.parametrize("per_batch", [1, 2, 1000])
def test_tail_returns_the_latest_n_oldest_first(tmp_path: Path, per_batch: int) -> None:
    path = filled(tmp_path / "audit.sqlite", 5, per_batch=per_batch)
    latest = tail(path, 3)
    assert [(r["seq"], r["request_id"]) for r in latest] == [(3, "req-3"), (4, "req-4"), (5, "req-5")]
    assert latest[2]["resources"] == ["https://data.test.example/id/building/5"]
    assert latest[1]["rules"] == ["rule-1"]
    assert tail(path, 0) == []


def test_format_entry_is_one_line_with_counts_rules_and_purpose(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 1)
    assert format_entry(tail(path, 1)[0]) == (
        "     1 2023-11-14T22:13:21.000Z EU.EORI.NL000000001 /id/building/1 resources=1 released=2"
        " withheld=3 rules=rule-1 purpose=maintenance request=req-1"
    )


def dsgo_audit(tmp_path: Path, *argv: str) -> int:
    """``dsgo audit ...`` on a node whose audit log is ``tmp_path/audit.sqlite``."""
    config = tmp_path / "node.toml"
    config.write_text(
        f'[node]\nparty_id = "{PARTY}"\nname = "Test"\nbase_iri = "https://data.test.example/"\n'
        'open = true\naudit = "audit.sqlite"\n'
    )
    parser = argparse.ArgumentParser(prog="dsgo")
    audit_cli.add_parser(parser.add_subparsers(required=True))
    args = parser.parse_args(["audit", argv[0], str(config), *argv[1:]])
    code: int = args.run(args)
    return code


def test_cli_verify_prints_the_head_and_exits_0_for_an_intact_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = filled(tmp_path / "audit.sqlite", 3)
    assert dsgo_audit(tmp_path, "verify") == 0
    digest = head(path)[1]
    assert capsys.readouterr().out == f"{path}: intact, 3 entries, head 3:{digest}\n"


def test_cli_verify_names_each_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = filled(tmp_path / "audit.sqlite", 3)
    anchor = "{}:{}".format(*head(path))
    edit(path, "$[2][8]", "marketing")
    assert dsgo_audit(tmp_path, "verify", "--anchor", anchor) == 1
    digest = batches(path)[0][4]
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: seq 1..3: hash does not match the content (edited)",
        f"{path}: BROKEN, 3 entries, head 3:{digest}",
    ]


def test_cli_verify_names_each_gap_and_counts_the_reads_not_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path, max_queue=3)
    for i in range(1, 6):
        log.record(entry(i))
    log.close()
    assert dsgo_audit(tmp_path, "verify") == 0  # the chain is intact; the loss is in it
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: gap: seq 4: 2 reads not recorded (queue full)",
        f"{path}: intact, 4 entries, 1 gaps: 2 reads not recorded, head 4:{head(path)[1]}",
    ]


def test_cli_verify_refuses_an_anchor_it_did_not_print(tmp_path: Path) -> None:
    filled(tmp_path / "audit.sqlite", 1)
    with pytest.raises(GatewayError) as caught:
        dsgo_audit(tmp_path, "verify", "--anchor", "3:abc")
    assert caught.value.detail == "--anchor: expected SEQ:HASH as verify prints it, got '3:abc'"


def test_cli_tail_prints_the_latest_entries_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = filled(tmp_path / "audit.sqlite", 5)
    assert dsgo_audit(tmp_path, "tail", "-n", "2") == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out] == [
        ["4", "2023-11-14T22:13:24.000Z"],
        ["5", "2023-11-14T22:13:25.000Z"],
    ]
    assert out == [format_entry(r) for r in tail(path, 2)]
