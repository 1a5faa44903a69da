"""Where ``/sparql`` queries run: a few worker processes, shared fairly, stopped on time.

A query cannot be interrupted inside pyoxigraph (an aggregate over a cross product
yields nothing until it is done), so it runs in a worker process
(``gateway.sparql.worker``) that is killed when the query's time is up and replaced at
once: the CPU stops within moments of the limit, whatever the query's shape. Workers
read a *snapshot* of the store, made when its label graphs change: an on-disk store's
checkpoint (hard links, opened read-only: pyoxigraph's read-only mode is undefined while
another process writes the same folder), or an in-memory store's label graphs as
N-Quads (each worker then holds its own copy: large data belongs in an on-disk store).

Fair shares: a party has at most ``per_party`` queries running (by default one fewer
than there are workers, so another party always finds one) and ``party_queue`` more
waiting; beyond that it gets ``429 too_many_queries``, and when ``queue`` queries wait
in all, everyone gets ``503 busy``, both with ``Retry-After``. Free workers take the
oldest query of the party served longest ago. A query killed at its limit keeps its
party's share until its worker's replacement is ready: the party's next query waits for
that worker, never taking the one left free for the others. A query that waits past its
time limit gets ``503 busy``. ``abort`` (on SIGINT/SIGTERM) answers every waiting and running query
with ``503`` and kills the workers, so the node stops at once whatever is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import pickle
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyoxigraph as ox

from gateway.errors import BadRequest, Busy, HttpError, NotAcceptable, QueryLimit, TooManyQueries
from gateway.sparql.point import answer_here
from gateway.sparql.worker import Request
from gateway.store.local import Labels, Store

__all__ = ["Answer", "QueryPool", "Snapshot", "on_exit_signals"]

log = logging.getLogger("dsgo.sparql")
_LENGTH = struct.Struct(">I")
_ERRORS: dict[str, Callable[[str], HttpError]] = {
    "bad_request": BadRequest,
    "not_acceptable": NotAcceptable,
    "query_limit": QueryLimit,
}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A copy of the store workers read, and the labels it holds."""

    folder: str
    labels: Labels
    residues: frozenset[ox.NamedNode] = frozenset()


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    media: str
    resources: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()


class _Worker:
    """One worker process and the pipe to it."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.folder = ""  # the snapshot it has open

    async def call(self, payload: bytes) -> tuple[dict[str, Any], bytes]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(_LENGTH.pack(len(payload)) + payload)
        await self.proc.stdin.drain()
        (size,) = _LENGTH.unpack(await self.proc.stdout.readexactly(4))
        frame = await self.proc.stdout.readexactly(size)
        (head,) = _LENGTH.unpack_from(frame)
        return orjson.loads(frame[4 : 4 + head]), frame[4 + head :]

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()


@dataclass(eq=False)
class _Pending:
    party: str
    request: Request
    deadline: float
    future: asyncio.Future[Answer]
    timeout: float
    worker: _Worker | None = None
    expiry: asyncio.TimerHandle | None = None


@dataclass
class _Queues:
    """Who waits, who runs, and whose turn it is."""

    waiting: dict[str, deque[_Pending]] = field(default_factory=dict)
    running: Counter[str] = field(default_factory=Counter)
    turns: Iterator[int] = field(default_factory=itertools.count)
    served: dict[str, int] = field(default_factory=dict)
    queued: int = 0

    def next_party(self, per_party: int) -> str | None:
        """The party with a waiting query and a free share, served longest ago."""
        ready = [p for p, q in self.waiting.items() if q and self.running[p] < per_party]
        return min(ready, key=lambda p: self.served.get(p, -1)) if ready else None

    def pop(self, party: str) -> _Pending:
        queue = self.waiting[party]
        pending = queue.popleft()
        if not queue:
            del self.waiting[party]
        self.queued -= 1
        self.running[party] += 1
        self.served[party] = next(self.turns)
        return pending


class QueryPool:
    def __init__(
        self,
        store: Store,
        *,
        base_iri: str,
        prefixes: dict[str, str],
        workers: int = 2,
        per_party: int | None = None,
        party_queue: int = 4,
        queue: int | None = None,
    ) -> None:
        self.store, self.base_iri, self.prefixes = store, base_iri, prefixes
        self.size = max(1, workers)
        self.per_party = per_party or max(1, self.size - 1)
        self.party_queue = party_queue
        self.queue = queue or 8 * self.size
        self._q = _Queues()
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._procs: set[asyncio.subprocess.Process] = set()  # every process not yet reaped
        self._starting = 0
        self._held: deque[str] = deque()  # parties whose killed query's worker is being replaced
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._root_folder: Path | None = None
        self._snapshot: Snapshot | None = None
        self._snapshot_lock = asyncio.Lock()
        self._publishing = threading.Lock()  # one snapshot made at a time, in any thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._numbers = itertools.count()
        self._users: Counter[str] = Counter()
        store.on_labels.append(self.publish)

    # -- snapshots -----------------------------------------------------------------

    @property
    def _root(self) -> Path:
        if self._root_folder is None:
            self._root_folder = _snapshot_root(self.store)
        return self._root_folder

    async def snapshot(self) -> Snapshot:
        """The snapshot of the store's current labels: usually published already by the
        thread that changed them (``publish``), else made now."""
        self._loop = asyncio.get_running_loop()
        current = self._snapshot
        if self._fresh(current):
            assert current is not None
            return current
        async with self._snapshot_lock:
            current = self._snapshot
            if current is None or not self._fresh(current):
                current = await asyncio.to_thread(self._make)
                self._prune()
            return current

    def current(self) -> Snapshot | None:
        """The snapshot of the store's current labels if one is made, else None (``snapshot``
        makes one); None too once the pool is stopping."""
        current = self._snapshot
        return current if not self._stopping and self._fresh(current) else None

    def publish(self) -> None:
        """Called by the store in the thread that changed its labels (never the event
        loop's): make their snapshot now, so the next query finds it ready. Only for an
        on-disk store (a checkpoint is cheap) or once queries have asked for snapshots."""
        if self._stopping or (self.store.path is None and self._snapshot is None):
            return
        if self._fresh(self._snapshot):
            return
        try:
            self._make()
        except Exception:  # the next query makes one then; the change itself stands
            log.exception("no snapshot of the store for SPARQL after its labels changed")
            return
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to do there
            loop.call_soon_threadsafe(self._published)

    def _published(self) -> None:
        """On the loop, once a new snapshot is published: old ones go, and idle workers
        open the new one now rather than on the next query (an open costs a few tenths
        of a second on a large store)."""
        self._prune()
        current = self._snapshot
        if current is None or self._stopping:
            return
        for worker in [w for w in self._idle if w.folder != current.folder]:
            self._idle.remove(worker)
            self._spawn_task(self._warm(worker, current.folder))

    async def _warm(self, worker: _Worker, folder: str) -> None:
        """Have idle ``worker`` open snapshot ``folder`` (an empty query over it)."""
        request = Request(folder, (), "ASK {}", None, 1, self.base_iri)
        try:
            await worker.call(pickle.dumps(request))
        except (asyncio.IncompleteReadError, BrokenPipeError, ConnectionResetError):
            self._retire(worker)
            return
        worker.folder = folder
        if worker in self._workers and not self._stopping:
            self._idle.append(worker)
            self._prune()
            self._dispatch()

    def _make(self) -> Snapshot:
        """A snapshot of the store as it is, now the one queries read."""
        with self._publishing:
            current = self._snapshot
            if self._fresh(current):
                assert current is not None
                return current
            folder = self._root / str(next(self._numbers))
            labels, residues = self.store.snapshot(folder)
            current = self._snapshot = Snapshot(str(folder), labels, residues)
            return current

    def _fresh(self, snapshot: Snapshot | None) -> bool:
        store = self.store
        return (
            snapshot is not None
            and snapshot.labels is store.labels()
            and snapshot.residues == store.residues()
        )

    def _prune(self) -> None:
        """Remove snapshots no worker has open and no query will read: older than the
        current one (a newer one may be being made in another thread)."""
        current = self._snapshot
        if current is None:
            return
        keep = {w.folder for w in self._workers} | {f for f, n in self._users.items() if n > 0}
        newest = int(Path(current.folder).name)
        for folder in list(self._root.iterdir()) if self._root.exists() else ():
            if str(folder) not in keep and folder.name.isdigit() and int(folder.name) < newest:
                shutil.rmtree(folder, ignore_errors=True)

    # -- running queries -------------------------------------------------------------

    async def run(self, party: str, request: Request, limit: float) -> Answer:
        """``request`` answered by a worker within ``limit`` seconds, for ``party``; a point
        look-up over the current snapshot's labels is answered here (``gateway.sparql.point``)."""
        snapshot = self._snapshot
        if not self._stopping and snapshot is not None and request.snapshot == snapshot.folder:
            here = answer_here(self.store, request, snapshot.labels, self.prefixes)
            if here is not None:
                return Answer(here[1], here[0]["media"])
        self._admit(party, limit)
        loop = asyncio.get_running_loop()
        pending = _Pending(party, request, time.monotonic() + limit, loop.create_future(), limit)
        pending.expiry = loop.call_later(limit, self._expire, pending)
        self._q.waiting.setdefault(party, deque()).append(pending)
        self._q.queued += 1
        self._users[request.snapshot] += 1
        self._ensure_workers()
        self._dispatch()
        try:
            return await asyncio.shield(pending.future)
        except asyncio.CancelledError:
            self._cancel(pending)  # the caller went away: its query stops too
            raise
        finally:
            self._users[request.snapshot] -= 1

    def _admit(self, party: str, timeout: float) -> None:
        retry = max(1, math.ceil(timeout))
        if self._stopping:
            raise Busy("the node is stopping", retry)
        mine = self._q.running[party] + len(self._q.waiting.get(party, ()))
        if mine >= self.per_party + self.party_queue:
            raise TooManyQueries(
                f"you have {mine} queries running or waiting here, as many as one party may; "
                "send the next when one is answered",
                retry,
            )
        if self._q.queued >= self.queue:
            raise Busy(f"{self._q.queued} queries are waiting here; try again shortly", retry)

    def _dispatch(self) -> None:
        while self._idle and not self._stopping:
            party = self._q.next_party(self.per_party)
            if party is None:
                return
            pending = self._q.pop(party)
            pending.worker = self._idle.pop()
            self._spawn_task(self._execute(pending.worker, pending))

    async def _execute(self, worker: _Worker, pending: _Pending) -> None:
        remaining = pending.deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            head, body = await asyncio.wait_for(worker.call(pickle.dumps(pending.request)), remaining)
            worker.folder = pending.request.snapshot
            self._settle(pending, _answer(head, body))
            self._idle.append(worker)
        except TimeoutError:
            self._retire(worker)
            self._settle(
                pending,
                QueryLimit(f"the query ran out of time ({pending.timeout:g} s); narrow it or add LIMIT"),
            )
        except (asyncio.IncompleteReadError, BrokenPipeError, ConnectionResetError):
            self._retire(worker)
            self._settle(pending, Busy("the query's worker stopped; try again", 1))
        finally:
            if worker in self._workers or self._stopping:
                self._q.running[pending.party] -= 1
            else:  # killed: the share stays taken until the replacement is ready
                self._held.append(pending.party)
            if pending.expiry is not None:
                pending.expiry.cancel()
            if self._snapshot is not None and pending.request.snapshot != self._snapshot.folder:
                self._prune()
            self._dispatch()

    def _expire(self, pending: _Pending) -> None:
        """A query still waiting when its time is up is answered: the node is too busy."""
        queue = self._q.waiting.get(pending.party)
        if queue is not None and pending in queue:
            queue.remove(pending)
            if not queue:
                del self._q.waiting[pending.party]
            self._q.queued -= 1
            retry = max(1, math.ceil(pending.timeout))
            self._settle(
                pending, Busy(f"no worker was free for your query within {pending.timeout:g} s", retry)
            )

    def _cancel(self, pending: _Pending) -> None:
        self._expire(pending)  # if still waiting
        if pending.worker is not None and not pending.future.done():
            self._retire(pending.worker)

    @staticmethod
    def _settle(pending: _Pending, outcome: Answer | Exception) -> None:
        if pending.future.done():
            return
        if isinstance(outcome, Exception):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)

    # -- workers ---------------------------------------------------------------------

    def _ensure_workers(self) -> None:
        while not self._stopping and len(self._workers) + self._starting < self.size:
            self._starting += 1
            self._spawn_task(self._start_worker())

    async def _start_worker(self) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway.sparql.worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            self._procs.add(proc)
            worker = _Worker(proc)
            if self._stopping:
                raise ProcessLookupError
            assert proc.stdin is not None and proc.stdout is not None
            init = orjson.dumps(self.prefixes)
            proc.stdin.write(_LENGTH.pack(len(init)) + init)
            (size,) = _LENGTH.unpack(await proc.stdout.readexactly(4))
            await proc.stdout.readexactly(size)  # ready
        except (OSError, asyncio.IncompleteReadError, ProcessLookupError):
            if not self._stopping:
                log.exception("a SPARQL worker did not start")
            return
        finally:
            self._starting -= 1
            if self._held:  # ready or failed: the share a killed query kept is free again
                self._q.running[self._held.popleft()] -= 1
                self._dispatch()
        if self._stopping:
            return
        self._workers.add(worker)
        self._idle.append(worker)
        self._dispatch()

    def _retire(self, worker: _Worker) -> None:
        """Kill ``worker`` (its query stops now) and start another in its place."""
        worker.kill()
        self._workers.discard(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        self._spawn_task(self._reap(worker.proc))
        self._ensure_workers()

    async def _reap(self, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        self._procs.discard(proc)

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- stopping --------------------------------------------------------------------

    def abort(self) -> None:
        """Answer everything with 503 and kill the workers: the node is stopping."""
        self._stopping = True
        for queue in list(self._q.waiting.values()):
            for pending in list(queue):
                self._settle(pending, Busy("the node is stopping", 1))
        self._q.waiting.clear()
        for proc in list(self._procs):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    async def close(self) -> None:
        self.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)  # they end as their pipes do
        for proc in list(self._procs):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        self._procs.clear()
        self._workers.clear()
        if self._root_folder is not None:
            shutil.rmtree(self._root_folder, ignore_errors=True)


def _answer(head: dict[str, Any], body: bytes) -> Answer | Exception:
    if head["status"] == "ok":
        return Answer(body, head["media"], tuple(head.get("resources", ())), tuple(head.get("fields", ())))
    make = _ERRORS.get(head["code"])
    if make is None:
        log.error("a SPARQL worker failed: %s", head.get("detail"))
        return Busy("the query could not be answered here; try again", 1)
    return make(head["detail"])


def _snapshot_root(store: Store) -> Path:
    """Snapshots of an on-disk store sit next to it (a checkpoint hard-links its files);
    an in-memory store's in a temporary folder. Left-overs of a crash are removed."""
    if store.path is not None:
        root = store.path.parent / f"{store.path.name}.sparql"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        return root
    return Path(tempfile.mkdtemp(prefix="dsgo-sparql-"))


@contextlib.contextmanager
def on_exit_signals(callback: Callable[[], None]) -> Iterator[None]:
    """Run ``callback`` on the event loop when SIGINT or SIGTERM arrives, then let the
    server's own handler (uvicorn's graceful shutdown) run as before. Outside the main
    thread (an app served by a test's portal) there are no signals to watch."""
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        loop.call_soon_threadsafe(callback)
        before = previous.get(signum)
        if callable(before):
            before(signum, frame)
        elif before == signal.SIG_DFL and signum == signal.SIGINT:
            raise KeyboardInterrupt

    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[int(sig)] = signal.signal(sig, handler)
    except ValueError:  # not the main thread
        previous.clear()
    try:
        yield
    finally:
        for number, before in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                if signal.getsignal(number) is handler:
                    signal.signal(number, before)
