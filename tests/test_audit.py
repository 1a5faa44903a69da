"""The audit log: reads are chained and written off the request path, verify catches every
edit, removal, reordering and cut, a crash never breaks the chain, withheld values have
no place in it."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway import audit
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
    return dataclasses.replace(base, **changes)


def filled(path: Path, n: int, first: int = 1) -> Path:
    """A log of entries ``first`` .. ``first + n - 1``, written by close()."""
    log = AuditLog(path)
    for i in range(first, first + n):
        log.record(entry(i))
    log.close()
    return path


def sql(path: Path, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        return db.execute(statement, params).fetchall()


def rows(path: Path) -> list[tuple[Any, ...]]:
    return sql(path, f"SELECT {', '.join(COLUMNS)} FROM entries ORDER BY seq")


def chain_hash(prev: str, row: Sequence[Any]) -> str:
    """The documented rule, written independently: sha256(prev + canonical JSON of seq..purpose)."""
    obj = dict(zip(COLUMNS[:10], row[:10], strict=True))
    for key in ("resources", "released", "rules"):
        obj[key] = orjson.loads(obj[key])
    return hashlib.sha256(prev.encode() + orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()


def rechain(path: Path) -> None:
    """What an attacker with write access does: recompute every hash and the head."""
    prev = ZERO_HASH
    for row in rows(path):
        digest = chain_hash(prev, row)
        sql(path, "UPDATE entries SET prev = ?, hash = ? WHERE seq = ?", (prev, digest, row[0]))
        prev = digest
    last = rows(path)[-1]
    sql(path, "UPDATE meta SET value = ? WHERE key = 'head_seq'", (str(last[0]),))
    sql(path, "UPDATE meta SET value = ? WHERE key = 'head_hash'", (last[11],))


def test_recorded_entries_are_written_within_the_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path, flush_interval=0.05) as log:
        started = time.monotonic()
        for i in (1, 2, 3):
            log.record(entry(i))
        while sql(path, "SELECT count(*) FROM entries") != [(3,)] and time.monotonic() - started < 5:
            time.sleep(0.01)
        waited = time.monotonic() - started
    assert waited < 1.0
    assert verify(path) == VerifyReport(ok=True, entries=3, problems=[], head=head(path))
    assert head(path)[0] == 3


def test_each_hash_is_sha256_of_prev_and_the_canonical_entry(tmp_path: Path) -> None:
    stored = rows(filled(tmp_path / "audit.sqlite", 2))
    assert stored[0][10] == ZERO_HASH
    assert stored[0][11] == chain_hash(ZERO_HASH, stored[0])
    assert stored[1][10] == stored[0][11]
    assert stored[1][11] == chain_hash(stored[0][11], stored[1])


def test_the_chain_continues_across_close_and_reopen(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 2)
    filled(path, 1, first=3)
    stored = rows(path)
    assert [r[0] for r in stored] == [1, 2, 3]
    assert [r[2] for r in stored] == ["req-1", "req-2", "req-3"]
    assert stored[2][10] == stored[1][11]
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
    ("column", "value"),
    [
        ("caller", "EU.EORI.NL000000666"),
        ("time", 1_600_000_000.0),
        ("resources", '["https://data.test.example/id/building/99"]'),
        ("withheld", 0),
        ("rules", '["rule-2"]'),
        ("purpose", "marketing"),
    ],
)
def test_verify_reports_an_edited_field(tmp_path: Path, column: str, value: object) -> None:
    path = filled(tmp_path / "audit.sqlite", 4)
    sql(path, f"UPDATE entries SET {column} = ? WHERE seq = 2", (value,))
    report = verify(path)
    assert report.problems == ["seq 2: hash does not match the content (edited)"]
    assert (report.ok, report.entries) == (False, 4)


def test_verify_reports_a_removed_middle_entry(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 5)
    sql(path, "DELETE FROM entries WHERE seq = 3")
    report = verify(path)
    assert report.problems == [
        "seq 4: entry 3 is missing",
        "seq 4: prev is not the hash of the entry before it (removed or moved)",
    ]
    assert (report.ok, report.entries) == (False, 4)


def test_verify_reports_two_entries_with_swapped_contents(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 4)
    second, third = rows(path)[1], rows(path)[2]
    setting = ", ".join(f"{c} = ?" for c in COLUMNS[1:10])
    sql(path, f"UPDATE entries SET {setting} WHERE seq = 2", third[1:10])
    sql(path, f"UPDATE entries SET {setting} WHERE seq = 3", second[1:10])
    assert verify(path).problems == [
        "seq 2: hash does not match the content (edited)",
        "seq 3: hash does not match the content (edited)",
    ]


def test_verify_reports_two_entries_with_swapped_seqs(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 4)
    sql(path, "UPDATE entries SET seq = -2 WHERE seq = 2")
    sql(path, "UPDATE entries SET seq = 2 WHERE seq = 3")
    sql(path, "UPDATE entries SET seq = 3 WHERE seq = -2")
    assert verify(path).problems == [
        "seq 2: prev is not the hash of the entry before it (removed or moved)",
        "seq 2: hash does not match the content (edited)",
        "seq 3: prev is not the hash of the entry before it (removed or moved)",
        "seq 3: hash does not match the content (edited)",
        "seq 4: prev is not the hash of the entry before it (removed or moved)",
    ]


def test_verify_reports_entries_cut_off_the_end_by_the_recorded_head(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 5)
    sql(path, "DELETE FROM entries WHERE seq >= 4")
    report = verify(path)
    assert report.problems == ["seq 4..5: missing at the end (the recorded head is seq 5)"]
    assert (report.ok, report.entries, report.head[0]) == (False, 3, 3)


def test_verify_reports_a_rechained_log_only_against_an_exported_anchor(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 4)
    anchor = head(path)
    sql(path, "UPDATE entries SET caller = 'EU.EORI.NL000000666' WHERE seq = 2")
    rechain(path)
    assert verify(path).ok  # the chain alone cannot tell: hence the external anchor
    assert verify(path, anchor=anchor).problems == [
        f"seq 4: hash differs from the anchor {anchor[1]} (rewritten)"
    ]


def test_verify_reports_a_cut_whose_head_was_rewritten_against_an_anchor(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 5)
    anchor = head(path)
    sql(path, "DELETE FROM entries WHERE seq = 5")
    rechain(path)
    assert verify(path, anchor=anchor).problems == ["seq 5: the anchored entry is missing (cut off)"]


def test_verify_refuses_a_missing_file_without_creating_it(tmp_path: Path) -> None:
    path = tmp_path / "nothing.sqlite"
    with pytest.raises(GatewayError) as caught:
        verify(path)
    assert caught.value.detail == f"{path}: no audit log here"
    assert not path.exists()


def test_opening_a_log_of_another_format_is_refused(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 1)
    sql(path, "UPDATE meta SET value = '2' WHERE key = 'format'")
    with pytest.raises(GatewayError) as caught:
        AuditLog(path)
    assert caught.value.detail == f"{path}: audit log format '2'; this node writes '1'"


def test_record_only_queues_until_the_writer_runs(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path)  # not started: no writer thread
    log.record(entry(1))
    assert log.status().queued == 1
    assert sql(path, "SELECT count(*) FROM entries") == [(0,)]
    log.close()
    assert sql(path, "SELECT count(*) FROM entries") == [(1,)]


def test_record_does_not_wait_for_a_stalled_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stalled, release = threading.Event(), threading.Event()
    writers: list[str] = []
    real_append = audit._append

    def slow_append(db: sqlite3.Connection, entries: Sequence[Entry]) -> int:
        writers.append(threading.current_thread().name)
        stalled.set()
        release.wait(10)
        return real_append(db, entries)

    monkeypatch.setattr(audit, "_append", slow_append)
    path = tmp_path / "audit.sqlite"
    with AuditLog(path, flush_interval=0.01) as log:
        log.record(entry(0))
        assert stalled.wait(5)  # the writer is now stuck inside a disk write
        requests = threading.Thread(target=lambda: [log.record(entry(i)) for i in range(1, 1001)])
        requests.start()
        requests.join(5)
        finished_while_stalled = not requests.is_alive()
        assert log.status().queued == 1001
        release.set()
    assert finished_while_stalled
    assert set(writers) == {f"audit {path.name}"}
    assert verify(path).entries == 1001


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
    assert verify(path) == VerifyReport(ok=True, entries=4, problems=[], head=head(path))


def test_an_entry_that_cannot_be_stored_becomes_a_gap_entry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path)
    log.record(entry(1))
    log.record(entry(2, time=float("nan")))
    log.record(entry(3))
    with caplog.at_level(logging.ERROR, logger="gateway.audit"):
        log.close()
    assert [(r["request_id"], r["path"], r["withheld"], r["purpose"]) for r in tail(path)] == [
        ("req-1", "/id/building/1", 3, "maintenance"),
        ("req-3", "/id/building/3", 3, "maintenance"),
        ("", DROPPED_PATH, 1, "could not be stored"),
    ]
    assert "audit entry of request 'req-2' not stored" in caplog.text
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
    assert [r[1] for r in sql(path, "PRAGMA table_info(entries)")] == list(COLUMNS)
    assert {f.name: f.type for f in dataclasses.fields(Entry)}["withheld"] == "int"
    stored = rows(path)[0]
    assert stored[:10] == (
        1,
        1_700_000_001.0,
        "req-1",
        PARTY,
        "/id/building/1",
        '["https://data.test.example/id/building/1"]',
        '["http://www.w3.org/2000/01/rdf-schema#label","https://vocab.dsgo.example/def#energyLabel"]',
        3,
        '["rule-1"]',
        "maintenance",
    )


def test_tail_returns_the_latest_n_oldest_first(tmp_path: Path) -> None:
    path = filled(tmp_path / "audit.sqlite", 5)
    latest = tail(path, 2)
    assert [(r["seq"], r["request_id"]) for r in latest] == [(4, "req-4"), (5, "req-5")]
    assert latest[1]["resources"] == ["https://data.test.example/id/building/5"]
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
    audit.add_parser(parser.add_subparsers(required=True))
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
    sql(path, "UPDATE entries SET purpose = 'marketing' WHERE seq = 3")
    assert dsgo_audit(tmp_path, "verify", "--anchor", anchor) == 1
    digest = rows(path)[2][11]
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: seq 3: hash does not match the content (edited)",
        f"{path}: BROKEN, 3 entries, head 3:{digest}",
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
