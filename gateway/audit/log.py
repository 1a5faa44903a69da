"""The audit log's writer: every read a node serves, queued in memory, committed in batches.

One ``Entry`` per answered read: who asked (party id or ``anonymous``), on which path,
which resources, which fields were released, *how many* were withheld (never which, never
their values), the policy rules that granted and their purpose, the time and the request
id. (A read over the caller's whole view, a collection, the counts or SPARQL, names the
caller's permits in force: no one resource's decision says which rule released what.)
``AuditLog.record`` only appends to an in-memory queue; a writer thread stores the
queue every ``flush_interval`` seconds as one batch in one transaction, so the request
path never waits on the disk. The file's format is ``gateway.audit.format``'s.

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

No read without its record. While the disk refuses batches *and* the queue is full,
``on_failure="refuse"`` (the node's default, ``node.audit_on_failure``) makes ``record``
raise ``AuditUnavailable`` (a 503 with ``Retry-After``: the read is not served);
``"serve"`` serves it and counts it into the next gap entry. A run that ends with entries
unwritten (killed, or stopped while the disk refused) is recorded as a gap entry by the
next writer to start (``gateway.audit.format``'s sessions). The failure is logged once,
then at most every ``_REPEAT_LOG`` seconds, and its end once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from gateway.audit.format import QUEUE_FULL, Row, append, begin_session, end_session, gap, open_for_writing
from gateway.errors import AuditUnavailable, GatewayError

__all__ = ["AuditLog", "AuditStatus"]

_CLOSE_RETRIES = 3
_REPEAT_LOG = 60.0  # seconds between two log lines about the same ongoing failure
_log = logging.getLogger("gateway.audit")


@dataclass(frozen=True, slots=True)
class AuditStatus:
    """For ``/health``: what waits in memory, what was committed and lost, the last error."""

    queued: int
    written: int
    dropped: int
    last_error: str | None
    #: the queue holds ``max_queue`` entries: a new read cannot be queued
    full: bool = False


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
        on_failure: str = "serve",
    ) -> None:
        if flush_interval <= 0 or max_batch < 1 or max_queue < 1:
            raise ValueError("flush_interval, max_batch and max_queue must be positive")
        if on_failure not in ("refuse", "serve"):
            raise ValueError('on_failure must be "refuse" or "serve"')
        self.path = Path(path)
        self._interval, self._max_batch, self._max_queue = flush_interval, max_batch, max_queue
        self._refuse = on_failure == "refuse"
        self._db = open_for_writing(self.path, durable)
        try:
            self._session = begin_session(self._db, self.path, max_queue)
        except Exception as exc:
            self._db.close()
            raise GatewayError(
                f"{self.path}: the audit log cannot be written ({exc}); the node does not start"
            ) from None
        self._failing_since: float | None = None
        self._failed_tries, self._logged_at = 0, 0.0
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
        if len(self._queue) < self._max_queue and (
            self._last_error is None or self._unwritten() < self._max_queue  # while failing: all waiting
        ):
            self._queue.append(entry)
            return
        if self._refuse and self._last_error is not None:
            raise AuditUnavailable(
                "the audit log cannot be written and its queue is full: reads are refused until it can"
            )
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
            self._end_session()
            self._db.close()

    def _end_session(self) -> None:
        """Leave the marker for the next start unless all was written (see ``format``)."""
        unwritten = [*self._pending, *self._queue]
        count = len(unwritten) + self._dropped
        times = [row[0] for row in unwritten] + ([self._first_drop] if self._dropped else [])
        try:
            end_session(self._db, self.path, self._session, count, times)
        except Exception as exc:
            _log.error("%s: the audit log's run could not be closed (%s)", self.path, exc)
        if count:
            _log.error(
                "%s: %d audit entries could not be written; the next start records the gap", self.path, count
            )

    def status(self) -> AuditStatus:
        with self._lock:
            return AuditStatus(
                queued=self._unwritten(),
                written=self._written,
                dropped=self._dropped_total + self._dropped,
                last_error=self._last_error,
                full=self._unwritten() >= self._max_queue,
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
                self._take()
            if not self._write_pending():
                return
            with self._lock:  # a backlog (or closing) is written at once, not next interval
                more = len(self._queue) >= self._max_batch or (self._closed and bool(self._queue))
            if not more:
                return

    def _take(self) -> None:
        with self._lock:
            queue = self._queue  # popped, not swapped: record() may be appending
            batch = [queue.popleft() for _ in range(len(queue))]
            dropped, self._dropped, first_drop = self._dropped, 0, self._first_drop
            self._dropped_total += dropped
            self._taken += len(batch) + (1 if dropped else 0)
        self._pending.extend(batch)
        if dropped:  # every drop came after the last accepted entry: the gap goes last
            self._pending.append(gap(dropped, first_drop, QUEUE_FULL))

    def _write_pending(self) -> bool:
        """Write the pending entries; False if the disk refused (they stay pending)."""
        while self._pending:
            chunk = self._pending[: self._max_batch]
            try:
                problems = append(self._db, chunk)
            except Exception as exc:  # the writer must outlive any one bad batch
                self._failed(exc)
                return False
            del self._pending[: len(chunk)]
            for problem in problems:
                _log.error("%s: %s", self.path, problem)
            self._recovered()
            with self._lock:
                self._dropped_total += len(problems)
            with self._written_cond:
                self._written += len(chunk)
                self._written_cond.notify_all()
        return True

    def _failed(self, exc: Exception) -> None:
        """Note a refused batch; log it the first time and then once a minute, not per try."""
        now = time.monotonic()
        with self._lock:
            self._last_error = f"{type(exc).__name__}: {exc}"
        self._failed_tries += 1
        if self._failing_since is None:
            self._failing_since = self._logged_at = now
            _log.error("%s: audit batch not written, will retry (%s)", self.path, exc)
        elif now - self._logged_at >= _REPEAT_LOG:
            self._logged_at = now
            _log.error(
                "%s: audit batches still not written after %d tries in %.0f s (%s); %d entries wait",
                self.path,
                self._failed_tries,
                now - self._failing_since,
                exc,
                self._unwritten(),
            )

    def _recovered(self) -> None:
        if self._failing_since is not None:
            _log.warning(
                "%s: audit batches written again after %d failed tries", self.path, self._failed_tries
            )
        self._failing_since, self._failed_tries = None, 0
        with self._lock:
            self._last_error = None
