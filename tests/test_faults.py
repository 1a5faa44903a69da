"""Real faults, one per test, with real processes on loopback: a hostile peer streaming an
endless or huge body, a registry that accepts and never answers, an audit log that
cannot be written, an emptied or truncated source, a SIGTERM to the demo. Each test says
what the user gets (status, rows kept, report, health) and that nothing is lost."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.audit import AuditLog, Entry, verify
from gateway.audit import log as audit_log
from gateway.errors import AuditUnavailable
from gateway.identity.assertions import ASSERTION_TYPE, make_assertion
from gateway.identity.pki import load_identity
from tests.kit import CORP, FIRM, MUNI
from tests.servers import DSGO, process, redis_server
from tests.test_demo import ROOT, free_block
from tests.test_federation import QUESTION, START
from tests.test_federation_processes import write_federation

pytestmark = pytest.mark.integration


def ask(config: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``dsgo query --as config`` with the federation tests' question and start IRIs."""
    (tmp / "q.rq").write_text(QUESTION)
    argv = [sys.executable, "-m", "gateway.cli", "query", "--as", str(config), f"@{tmp / 'q.rq'}", *extra]
    for iri in START:
        argv += ["--start", iri]
    return subprocess.run(argv, capture_output=True, text=True, timeout=90)


def add_to(config: Path, table: str, line: str) -> None:
    config.write_text(config.read_text() + f"\n[{table}]\n{line}\n")


def hostile(port: int, mode: str, *extra: str) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    argv = [sys.executable, "-m", "tests.hostile_peer", str(port), mode, *extra]
    return process(argv, f"http://127.0.0.1:{port}")


def poll(check: Any, what: str, within: float = 30) -> Any:
    """``check()`` until it gives something true, at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {within:g} s: {what}")


def peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@contextlib.contextmanager
def hostile_federation(
    tmp: Path, mode: str, *extra: str, limits: str = ""
) -> Iterator[tuple[dict[str, Path], dict[str, str], int]]:
    """The registry, the corporation's and the municipality's nodes, and in the firm's
    place a hostile peer; yields the configs, the URLs and the municipality node's pid."""
    registry, configs, urls, registry_url = write_federation(tmp)
    if limits:
        add_to(configs[MUNI], "federation", limits)
    with ExitStack() as stack:
        stack.enter_context(process([DSGO, "registry", str(registry)], registry_url))
        stack.enter_context(hostile(int(urls[FIRM].rsplit(":", 1)[1]), mode, *extra))
        stack.enter_context(process([DSGO, "serve", str(configs[CORP])], urls[CORP]))
        muni = stack.enter_context(process([DSGO, "serve", str(configs[MUNI])], urls[MUNI]))
        yield configs, urls, muni.pid


# -- a hostile peer ----------------------------------------------------------------------


def test_an_endless_body_is_cut_at_the_document_limit_while_the_node_answers_its_health(
    tmp_path: Path,
) -> None:
    (tmp_path / "q.rq").write_text(QUESTION)
    with hostile_federation(tmp_path, "endless", "--hold", limits="max_document_bytes = 4000000") as (
        configs,
        urls,
        _,
    ):
        argv = [
            sys.executable,
            "-m",
            "gateway.cli",
            "query",
            "--as",
            str(configs[MUNI]),
            f"@{tmp_path / 'q.rq'}",
        ]
        argv += [arg for iri in START for arg in ("--start", iri)] + ["--json"]
        asking = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            poll(lambda: httpx.get(urls[FIRM] + "/stats").json()["sent"] >= 1 << 20, "the peer streams")
            # the municipality's node holds the hostile stream open: its own routes answer
            live = httpx.get(urls[MUNI] + "/health/live", timeout=10)
            ready = httpx.get(urls[MUNI] + "/health/ready", timeout=10)
            httpx.post(urls[FIRM] + "/release")
            out, err = asking.communicate(timeout=90)
        finally:
            asking.kill()
        sent = httpx.get(urls[FIRM] + "/stats").json()["sent"]
    assert (live.status_code, ready.status_code) == (200, 200)
    assert asking.returncode == 1, err  # an incomplete answer
    answer = json.loads(out)
    firm = answer["report"]["nodes"][FIRM]
    assert [f["reason"] for f in firm["failures"]] == ["limit"]
    assert "federation.max_document_bytes" in firm["failures"][0]["detail"]
    assert answer["report"]["complete"] is False
    labels = [row["label"]["value"] for row in answer["results"]["bindings"]]
    assert labels == ["F", "E"]  # the corporation's part of the answer is kept
    assert sent < 64 << 20  # cut off, not read to its end


def test_a_huge_body_leaves_the_asking_nodes_memory_bounded_and_the_partial_answer_exits_0_when_allowed(
    tmp_path: Path,
) -> None:
    with hostile_federation(tmp_path, "huge") as (configs, urls, muni):
        idle = peak_rss(muni)
        done = ask(configs[MUNI], tmp_path, "--allow-partial")
        peak = peak_rss(muni)
        sent = httpx.get(urls[FIRM] + "/stats").json()["sent"]
    assert done.returncode == 0, done.stderr
    assert "INCOMPLETE" in done.stdout and "(2 rows)" in done.stdout
    assert "failed at /collections/bot:Building: limit" in done.stdout
    assert peak - idle < 100 << 20  # with the default limits, against a 500 MB body
    assert sent < 100 << 20


def test_an_incomplete_answer_exits_1_without_allow_partial(tmp_path: Path) -> None:
    with hostile_federation(tmp_path, "huge") as (configs, _, _):
        done = ask(configs[MUNI], tmp_path)
    assert done.returncode == 1, done.stderr
    assert "INCOMPLETE" in done.stdout


# -- a registry that hangs -----------------------------------------------------------------


@contextlib.contextmanager
def hanging_listener(port: int) -> Iterator[None]:
    """Accepts connections on ``port`` and never answers them."""
    server = socket.create_server(("127.0.0.1", port), reuse_port=False)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_a_registry_that_never_answers_fails_the_query_within_its_timeout_and_is_named(
    tmp_path: Path,
) -> None:
    _, configs, urls, registry_url = write_federation(tmp_path)
    with (
        hanging_listener(int(registry_url.rsplit(":", 1)[1])),
        process([DSGO, "serve", str(configs[MUNI])], urls[MUNI]),
    ):
        done = ask(configs[MUNI], tmp_path)
        ready = httpx.get(urls[MUNI] + "/health/ready", timeout=10)
    assert done.returncode == 2
    assert "participant registry cannot be reached (no answer within 2 s)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert ready.status_code == 503 and ready.json()["registry"] == {"status": "failing"}


def test_a_registry_that_hangs_after_answering_leaves_cached_answers_serving(tmp_path: Path) -> None:
    registry, configs, urls, registry_url = write_federation(tmp_path)
    stale = {"DSGO_REGISTRY_REFRESH": "0.001"}  # every cached answer is renewed in the background
    with ExitStack() as nodes:
        registry_stack = ExitStack()
        registry_stack.enter_context(process([DSGO, "registry", str(registry)], registry_url))
        for party in (FIRM, CORP, MUNI):
            nodes.enter_context(process([DSGO, "serve", str(configs[party])], urls[party], env=stale))
        warm = ask(configs[MUNI], tmp_path)
        registry_stack.close()
        with hanging_listener(int(registry_url.rsplit(":", 1)[1])):
            first = ask(configs[MUNI], tmp_path)  # served from cache; the renewal hangs
            poll(
                lambda: httpx.get(urls[MUNI] + "/health").json()["registry"]["status"] == "degraded",
                "the municipality's node sees its registry fail",
            )
            again = ask(configs[MUNI], tmp_path)
    assert warm.returncode == 0, warm.stderr
    assert first.returncode == 0 and again.returncode == 0, again.stderr
    assert "(2 rows)" in again.stdout and "Answer complete" in again.stdout
    assert f"registry ({registry_url}): degraded since" in again.stdout
    assert "no answer within 2 s; cached answers serve" in again.stdout


def _token_form(tmp: Path, party: str, audience: str) -> dict[str, str]:
    """A client_credentials request of ``party`` at ``audience``'s node (iSHARE §4.2)."""
    return {
        "grant_type": "client_credentials",
        "scope": "iSHARE",
        "client_id": party,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": make_assertion(load_identity(tmp / "keys" / party), audience, time.time()),
    }


def test_a_token_request_while_the_registry_never_answers_is_a_503_naming_the_registry(
    tmp_path: Path,
) -> None:
    _, configs, urls, registry_url = write_federation(tmp_path)
    with (
        hanging_listener(int(registry_url.rsplit(":", 1)[1])),
        process([DSGO, "serve", str(configs[CORP])], urls[CORP]),
    ):
        answer = httpx.post(urls[CORP] + "/connect/token", data=_token_form(tmp_path, MUNI, CORP), timeout=30)
    assert (answer.status_code, answer.json()["code"]) == (503, "temporarily_unavailable")
    assert answer.json()["title"] == "Participant registry unavailable"
    assert "no answer within 2 s" in answer.json()["detail"]
    assert answer.headers["retry-after"] == "5"


# -- a replay cache that cannot be reached --------------------------------------------------


def test_a_node_whose_redis_is_gone_is_failing_in_health_and_refuses_tokens(tmp_path: Path) -> None:
    registry, configs, urls, registry_url = write_federation(tmp_path)
    with ExitStack() as stack:
        stack.enter_context(process([DSGO, "registry", str(registry)], registry_url))
        redis = ExitStack()
        env = {"DSGO_NODE_REDIS": redis.enter_context(redis_server())}
        stack.enter_context(process([DSGO, "serve", str(configs[CORP])], urls[CORP], env=env))
        before = httpx.get(urls[CORP] + "/health/ready", timeout=10)
        redis.close()  # Redis stops: the replay cache, and so every token request, fails
        after = httpx.get(urls[CORP] + "/health/ready", timeout=10)
        token = httpx.post(urls[CORP] + "/connect/token", data=_token_form(tmp_path, MUNI, CORP), timeout=30)
    assert before.status_code == 200 and before.json()["replay_cache"] == {"status": "ready"}
    assert after.status_code == 503 and after.json()["status"] == "failing"
    assert after.json()["replay_cache"] == {"status": "failing"}
    assert (token.status_code, token.json()["code"]) == (503, "temporarily_unavailable")


# -- an audit log that cannot be written ----------------------------------------------------


def _no_file_growth() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # every write that grows a file fails


def test_a_node_does_not_start_on_an_audit_log_it_cannot_write(tmp_path: Path) -> None:
    _, configs, urls, _ = write_federation(tmp_path)
    with process([DSGO, "serve", str(configs[CORP])], urls[CORP]):
        pass  # the log exists, written once
    log = configs[CORP].parent / "state" / "audit.sqlite"
    before = verify(log)
    done = subprocess.run(
        [DSGO, "serve", str(configs[CORP])],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_no_file_growth,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("dsgo: ") and "audit log" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert verify(log) == before


_KILLED_CHILD = """
import sys, time
from pathlib import Path
from gateway.audit import AuditLog, Entry
from gateway.audit import log as audit_log

log = AuditLog(Path(sys.argv[1]), flush_interval=0.01, max_queue=50)
log.start()
def refused(*args):
    raise OSError(30, "Read-only file system")
audit_log.append = refused  # from now on the disk refuses every batch
for i in range(20):
    log.record(Entry(time.time(), f"r{i}", "anonymous", "/id/building/1", (), (), 0, (), ""))
print("recorded", flush=True)
time.sleep(60)
"""


def test_reads_queued_when_a_node_is_killed_while_the_disk_refuses_are_a_gap_at_the_next_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.sqlite"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CHILD, str(path)], stdout=subprocess.PIPE, cwd=ROOT
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"recorded\n"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
    assert verify(path).gaps == ()  # nothing says so yet: the marker only
    AuditLog(path).close()  # the next start
    report = verify(path)
    assert report.ok and report.unrecorded == 50  # at most its queue: the count died with it
    assert len(report.gaps) == 1 and "the run ended with reads unwritten: at most 50 reads" in report.gaps[0]


def _entry(i: int) -> Entry:
    return Entry(1_700_000_000.0 + i, f"r{i}", "anonymous", "/id/building/1", (), (), 0, (), "")


def test_reads_unwritten_when_a_node_stops_are_a_gap_with_their_count_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path)

    def refused(*args: object) -> list[str]:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(audit_log, "append", refused)
    for i in range(1, 8):
        log.record(_entry(i))
    log.close()  # the disk still refuses: 7 reads unwritten
    monkeypatch.undo()
    AuditLog(path).close()
    report = verify(path)
    assert report.ok and report.unrecorded == 7
    assert report.gaps == (
        "seq 1: 7 reads not recorded (the run ended with reads unwritten: 7 reads between"
        " 2023-11-14T22:13:21Z and 2023-11-14T22:13:27Z)",
    )


def test_reads_are_refused_while_the_log_fails_and_its_queue_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(tmp_path / "audit.sqlite", max_queue=3, on_failure="refuse")
    monkeypatch.setattr(audit_log, "append", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left")))
    for i in range(1, 4):
        log.record(_entry(i))
    assert not log.flush(timeout=0.2)  # the writer tried, and failed
    with pytest.raises(AuditUnavailable) as refused:
        log.record(_entry(4))
    monkeypatch.undo()
    log.close()
    assert (refused.value.status, refused.value.code) == (503, "audit_unavailable")
    assert refused.value.headers["retry-after"] == "5"
    report = verify(tmp_path / "audit.sqlite")
    assert (report.entries, report.unrecorded) == (3, 0)  # the refused read was not served


def test_serve_policy_serves_reads_and_records_the_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(tmp_path / "audit.sqlite", max_queue=3, on_failure="serve")
    monkeypatch.setattr(audit_log, "append", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left")))
    for i in range(1, 6):
        log.record(_entry(i))
    assert not log.flush(timeout=0.2)
    monkeypatch.undo()
    log.close()
    report = verify(tmp_path / "audit.sqlite")
    assert (report.entries, report.unrecorded) == (4, 2)
    assert report.gaps == ("seq 4: 2 reads not recorded (queue full)",)


def test_a_failing_writer_logs_its_error_once_not_at_every_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    log = AuditLog(tmp_path / "audit.sqlite", flush_interval=0.01)
    tries: list[int] = []

    def refused(*args: object) -> list[str]:
        tries.append(1)
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(audit_log, "append", refused)
    with caplog.at_level("ERROR", logger="gateway.audit"):
        log.start()
        log.record(_entry(1))
        poll(lambda: len(tries) >= 20, "the writer retries")
        errors = [r for r in caplog.records if "not written" in r.getMessage()]
    monkeypatch.undo()
    log.close()
    assert len(errors) == 1


# -- an emptied or truncated source ---------------------------------------------------------


def _source_state(url: str) -> str:
    return str(httpx.get(url + "/health").json()["sources"]["data"]["status"])


@pytest.mark.parametrize("cut", ["empty", "truncated"])
def test_an_emptied_or_truncated_source_keeps_its_last_version_and_answers_say_so(
    tmp_path: Path, cut: str
) -> None:
    registry, configs, urls, registry_url = write_federation(tmp_path)
    data = configs[CORP].parent / "data.ttl"
    with ExitStack() as stack:
        stack.enter_context(process([DSGO, "registry", str(registry)], registry_url))
        for party in (FIRM, CORP, MUNI):
            stack.enter_context(process([DSGO, "serve", str(configs[party])], urls[party]))
        text = data.read_bytes()
        data.write_bytes(b"" if cut == "empty" else text[: len(text) // 2])
        poll(lambda: _source_state(urls[CORP]) == "degraded", "the corporation's node notices")
        done = ask(configs[MUNI], tmp_path)
        ready = httpx.get(urls[CORP] + "/health/ready")
    assert done.returncode == 1, done.stderr
    assert "(2 rows)" in done.stdout  # the last good version still answers
    assert "INCOMPLETE" in done.stdout and "possibly incomplete: its source(s) data failed" in done.stdout
    assert ready.status_code == 200 and ready.json()["sources"] == {"data": {"status": "degraded"}}


def test_a_node_started_on_an_empty_source_serves_none_of_it_and_says_so(tmp_path: Path) -> None:
    registry, configs, urls, registry_url = write_federation(tmp_path)
    (configs[CORP].parent / "data.ttl").write_bytes(b"")
    with ExitStack() as stack:
        stack.enter_context(process([DSGO, "registry", str(registry)], registry_url))
        for party in (FIRM, CORP, MUNI):
            stack.enter_context(process([DSGO, "serve", str(configs[party])], urls[party]))
        done = ask(configs[MUNI], tmp_path)
        ready = httpx.get(urls[CORP] + "/health/ready")
    assert done.returncode == 1, done.stderr
    assert "(0 rows)" in done.stdout and "INCOMPLETE" in done.stdout
    assert "possibly incomplete: its source(s) data failed" in done.stdout
    assert ready.status_code == 503 and ready.json()["sources"] == {"data": {"status": "failing"}}


# -- a SIGTERM to the demo ------------------------------------------------------------------


def _children(pid: int) -> set[int]:
    """Every live process whose parent is ``pid``."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell without job control starts `demo &`


@pytest.mark.parametrize("stop", ["sigterm", "ctrl-c", "ctrl-c, started with SIGINT ignored"])
def test_a_sigterm_or_ctrl_c_to_the_demo_stops_the_registry_and_every_node_without_tracebacks(
    tmp_path: Path, stop: str
) -> None:
    shutil.copytree(
        ROOT / "examples" / "pilot", tmp_path / "examples" / "pilot", ignore=shutil.ignore_patterns("state")
    )
    argv = [sys.executable, "-m", "gateway.cli", "demo", "--root", str(tmp_path), "--port", str(free_block())]
    demo = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_ignore_sigint if "ignored" in stop else None,
    )
    try:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if "serving until Ctrl-C" in line:
                break
        started = _children(demo.pid)
        if stop == "sigterm":
            demo.send_signal(signal.SIGTERM)
        else:  # a terminal's Ctrl-C: SIGINT to the whole foreground process group
            os.killpg(demo.pid, signal.SIGINT)
        out, err = demo.communicate(timeout=60)
    finally:
        demo.kill()
    nodes = len(list((ROOT / "examples" / "pilot").glob("*/node.toml")))
    assert len(started) == 1 + nodes, "".join(lines) + err  # the registry and every node
    assert demo.returncode in (0, 130)
    assert not any(_alive(pid) for pid in started)
    assert "Traceback" not in err + out
