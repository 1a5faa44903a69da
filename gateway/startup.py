"""A first start's heavy work, done in a child process that exits before the node serves.

A node whose on-disk store lacks a configured source (its first start, or a source
added since) must read it into the store and label every description; one whose store
holds data never labelled (a crash half-way) must label it all. For 1,000,000 triples
that is about a minute of work, and the process that did it keeps its memory: not in
Python objects (a restarted node holds as many), but as allocator state, glibc's
per-thread arenas and pymalloc's arenas fragmented by the load (at 1M triples, 37 MB
more RSS in process, about 76 MB once the node has served 20 grants; RocksDB's own
caches besides, until the store closes). Neither can be handed back.

So the node closes its store (``Store.apart``) and a child process (``python -m
gateway.startup``) opens it, reads the missing sources as the node itself would
(``Sources.refresh``: the same errors, and the same log lines on the same stderr, which
are its progress), labels everything (``Access.sync_labels``) and exits. The node then
opens the filled store exactly as a restart does. What the child found wrong with a
source (failures and warnings) comes back to the node for ``/health``. An exception in
the child is raised in the node, so the start fails as it would have in process; a
child that dies is a ``StartError``. Incremental work (a changed source re-read, a
policy change relabelled) stays in the node: it is small, and a serving node must be
its store's only writer.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.config import NodeSettings
from gateway.errors import GatewayError, SourceError, StartError
from gateway.node import Node
from gateway.store.local import Store
from gateway.store.sources import Failure, Sources

__all__ = ["load_apart", "main", "work_to_do"]

log = logging.getLogger("dsgo.node")
#: the child: this module, run by the node's own interpreter
CHILD = (sys.executable, "-m", "gateway.startup")
_PR_SET_PDEATHSIG = 1

#: a source error as plain values: SourceError's arguments are not its ``args``, so it
#: does not survive pickling as it is
_Flat = tuple[type[SourceError], str, str, int | None]


@dataclass(frozen=True, slots=True)
class _Job:
    settings: NodeSettings
    sources: tuple[str, ...]  # to read into the store (each missing from it)
    now: float  # the node's clock when it began: which rules are labelled
    parent: int
    level: int
    format: str | None


@dataclass(frozen=True, slots=True)
class _Done:
    failures: dict[str, tuple[_Flat, float, str]] = field(default_factory=dict)
    warnings: dict[str, list[_Flat]] = field(default_factory=dict)
    error: BaseException | None = None


def work_to_do(node: Node) -> tuple[str, ...] | None:
    """The sources a first start must read (maybe none, when only labelling is left), or
    None when there is no heavy work, or no on-disk store to hand to a child."""
    store, sources = node.store, node.sources
    if not isinstance(store, Store) or store.path is None or not isinstance(sources, Sources):
        return None
    stored = store.sources()
    missing = tuple(name for name in sources.connectors if name not in stored)
    if missing or (stored and not store.labels().state):
        return missing
    return None


def load_apart(node: Node, command: Sequence[str] | None = None) -> bool:
    """Do a first start's heavy work (``work_to_do``) in a child process (``command``,
    by default ``CHILD``); True if there was any. The store is closed meanwhile and
    opened again afterwards, whatever befell the child. Raises what the child raised, or
    ``StartError`` if it died."""
    names = work_to_do(node)
    if names is None:
        return False
    store, sources = node.store, node.sources
    assert isinstance(store, Store) and isinstance(sources, Sources)
    root = logging.getLogger()
    fmt = next((h.formatter._fmt for h in root.handlers if h.formatter is not None), None)
    job = _Job(node.settings, names, node.access.clock(), os.getpid(), root.getEffectiveLevel(), fmt)
    what = f"reading {', '.join(names)} into the store and labelling" if names else "labelling"
    log.info("first start: %s, in a process of its own", what)
    started = time.perf_counter()
    with store.apart():
        child = subprocess.run(command or CHILD, input=pickle.dumps(job), stdout=subprocess.PIPE, check=False)
    done = _answer(child)
    if done.error is not None:
        raise done.error
    for name, (error, at, fingerprint) in done.failures.items():
        sources.failures[name] = Failure(_error(error), at, fingerprint)
    for name, problems in done.warnings.items():
        sources.warnings[name] = [_error(p) for p in problems]
    log.info("first start: %s done in %.1fs", what, time.perf_counter() - started)
    return True


def _answer(child: subprocess.CompletedProcess[bytes]) -> _Done:
    code = child.returncode
    how = f"was killed by signal {-code}" if code < 0 else f"exited {code}"
    if code == 0:
        with contextlib.suppress(Exception):
            done = pickle.loads(child.stdout)  # noqa: S301 -- the node's own child, on its own pipe
            if isinstance(done, _Done):
                return done
        how = "answered nothing the node understands"
    raise StartError(f"the process reading the sources into the store {how} (its messages are above)")


def _flat(error: SourceError) -> _Flat:
    return type(error), error.source, error.reason, error.line


def _error(flat: _Flat) -> SourceError:
    kind, source, reason, line = flat
    return kind(source, reason, line)


# -- the child ---------------------------------------------------------------------


def _work(job: _Job) -> _Done:
    node = Node(job.settings, clock=lambda: job.now)
    try:
        sources = node.sources
        assert isinstance(sources, Sources)
        for name in job.sources:
            sources.refresh(name, serving=False)
        node.access.sync_labels()
        return _Done(
            {n: (_flat(f.error), f.at, f.fingerprint) for n, f in sources.failures.items()},
            {n: [_flat(p) for p in problems] for n, problems in sources.warnings.items()},
        )
    finally:
        node.close()


def _portable(error: BaseException) -> BaseException:
    """``error`` if it survives the way to the node, else a StartError saying what it was."""
    try:
        back = pickle.loads(pickle.dumps(error))  # noqa: S301 -- made here
    except Exception:
        return StartError(f"reading the sources into the store failed: {type(error).__name__}: {error}")
    return back if isinstance(back, BaseException) else StartError(str(error))


def main() -> int:
    """The child: one job from stdin, its outcome to stdout, the log to stderr."""
    with contextlib.suppress(OSError, AttributeError):  # it dies with the node
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    # Ctrl-C is the node's to answer (it stops once started, as when it loaded in process)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    job = pickle.load(sys.stdin.buffer)  # noqa: S301 -- from the node that started this process
    assert isinstance(job, _Job)
    if os.getppid() != job.parent:
        return 1  # the node died before this process could follow it
    logging.basicConfig(level=job.level, format=job.format or logging.BASIC_FORMAT, stream=sys.stderr)
    out, sys.stdout = sys.stdout.buffer, sys.stderr  # nothing printed can garble the answer
    try:
        done = _work(job)
    except Exception as exc:
        if not isinstance(exc, GatewayError):
            traceback.print_exc()
        done = _Done(error=_portable(exc))
    out.write(pickle.dumps(done))
    out.flush()
    return 0


if __name__ == "__main__":  # the module's own classes, as the node pickles them, not __main__'s
    from gateway.startup import main as child

    sys.exit(child())
