"""Changes other writers make in a node's remote SPARQL store, found by polling.

A SPARQL 1.1 store offers no change feed, and Virtuoso exposes no version of a graph to
a SPARQL client (no modification time, no ETag on ``/sparql``), so ``StoreWatch``
polls, every ``watch`` seconds of the source's table (default ``DEFAULT_WATCH``):

1. **Is anything different?** One query (``digest_query``) makes the store compute a
   digest of the whole graph and answer one row: the count of triples and two sums of
   28 bits each of every triple's MD5 (SPARQL 1.1 Query §17.4.6.1; a nibble's value is
   ``STRLEN(STRBEFORE("0123456789abcdef", c))``, since SPARQL cannot read hex). A sum
   does not depend on the order the store scans in, and the count and 56 bits of hash
   make an unnoticed change as likely as guessing a random 56-bit number. Chosen over a
   count alone (a changed label keeps the count) and over reading the graph (what the
   check is there to avoid); the cost is one scan inside the store, nothing on the wire.
2. **Which resources?** When the digest moved, the same digest per named subject
   (``subject_digest_query``: its triples and those of its blank nodes up to
   ``SUBJECT_DEPTH`` levels) is compared with the digests kept from the last poll; the
   subjects whose digest differs, appeared or went, and those whose description nests
   blank nodes deeper (``deep``, which their digest does not cover), are read anew
   (``RemoteStore.describe``).
3. **What changed?** Their descriptions as last seen (kept on disk, ``Seen``: per
   subject its digest and its description as N-Triples, so memory holds the changed
   subjects only, never the graph) and as now go to the watchers: the notifier diffs
   them (``gateway.notify.change.source_diff``) and stores what each subscriber may see
   in its outbox, exactly as for a re-read file. Only then is the new version recorded
   as seen, so a crash in between finds the same change again (and the outbox drops the
   notifications it already holds, by their stable ids).

A store that cannot be reached raises ``UpstreamError`` from ``poll``: nothing is
recorded, the failure shows in ``/health`` and the log, and the next poll that reaches
the store diffs against the last version seen, so a change made meanwhile is found
once. The first poll only records what is there: a first version is no change.
``changed_now`` makes the next check due at once; ``POST /subscriptions/store-changed``
lets the node's own party (the store's owner, with its token) have the check made at once.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyoxigraph as ox

if TYPE_CHECKING:
    from gateway.store.remote import RemoteStore

__all__ = [
    "DEFAULT_WATCH",
    "SUBJECT_DEPTH",
    "Seen",
    "StoreWatch",
    "digest_query",
    "subject_digest_query",
]

log = logging.getLogger("dsgo.sources")

#: seconds between checks of a remote store when its table does not say (``watch``)
DEFAULT_WATCH = 30.0
#: blank node levels a subject's digest covers; deeper descriptions are re-read on any change
SUBJECT_DEPTH = 2
#: changed subjects handed to the watchers at once (their old and new descriptions in memory)
_CHUNK = 500
_HEX = '"0123456789abcdef"'


def _term(var: str) -> str:
    """A term as text: an IRI, a literal with its language and datatype, a blank node by
    its label where the store gives one (Virtuoso does; a stricter store gives "")."""
    literal = f'CONCAT("\\"", STR({var}), "\\"@", LANG({var}), "^", COALESCE(STR(DATATYPE({var})), ""))'
    blank = f'CONCAT("_:", COALESCE(STR({var}), ""))'
    return f"IF(isBlank({var}), {blank}, IF(isLiteral({var}), {literal}, STR({var})))"


def _sums(text: str) -> str:
    """``?a`` and ``?b``: two 28-bit numbers from the MD5 of ``text``, for SUM."""

    def number(first: int) -> str:
        return " + ".join(
            f"STRLEN(STRBEFORE({_HEX}, SUBSTR(?h, {first + i}, 1))) * {16 ** (6 - i)}" for i in range(7)
        )

    return f"BIND(MD5({text}) AS ?h) BIND(({number(1)}) AS ?x) BIND(({number(8)}) AS ?y)"


_AGGREGATES = "(COUNT(*) AS ?n) (SUM(?x) AS ?a) (SUM(?y) AS ?b)"


def digest_query(dataset: str) -> str:
    """Count and sums over every triple of the graph (``dataset``: its FROM clause)."""
    text = f'CONCAT({_term("?s")}, " ", STR(?p), " ", {_term("?o")})'
    return f"SELECT {_AGGREGATES} {dataset}WHERE {{ ?s ?p ?o {_sums(text)} }}"


def subject_digest_query(dataset: str, depth: int, after: ox.Literal, limit: int) -> str:
    """Count and sums per named subject over the triples of its blank nodes ``depth``
    levels down (0: its own triples), each with the path of predicates that reaches it,
    for the ``limit`` subjects after ``after``. One query per depth, summed by the node:
    Virtuoso 7.2 cannot compile the UNION of them ("sparp_gp_deprecate(): equiv replaces
    filter")."""
    hops = range(1, depth + 1)
    start = ["?s", *(f"?b{i}" for i in hops)]
    chain = "".join(f"{start[i - 1]} ?v{i} ?b{i} . " for i in hops)
    blank = " && ".join(["isIRI(?s)", *(f"isBlank(?b{i})" for i in hops)])
    via = "".join(f'STR(?v{i}), " ", ' for i in hops)
    text = f'CONCAT({via}STR(?p), " ", {_term("?o")})'
    return (
        f"SELECT ?s {_AGGREGATES} {dataset}WHERE {{ {chain}{start[depth]} ?p ?o "
        f"FILTER({blank} && STR(?s) > {after}) {_sums(text)} }} GROUP BY ?s ORDER BY STR(?s) LIMIT {limit}"
    )


def _deep(subject: str, cbd: Sequence[ox.Triple]) -> bool:
    """Does ``cbd`` nest blank nodes deeper than ``SUBJECT_DEPTH`` levels under ``subject``?"""
    by: dict[Any, list[ox.Triple]] = {}
    for t in cbd:
        by.setdefault(t.subject, []).append(t)
    level: set[Any] = {ox.NamedNode(subject)}
    for _ in range(SUBJECT_DEPTH + 1):
        level = {t.object for s in level for t in by.get(s, ()) if isinstance(t.object, ox.BlankNode)}
        if not level:
            return False
    return True


class Seen:
    """The graph as last seen, on disk: its digest, and per subject a digest and the
    description (N-Triples). One short connection per use: a poll is seconds apart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS graph (id INTEGER PRIMARY KEY CHECK (id = 0), digest TEXT)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS subjects (iri TEXT PRIMARY KEY, digest TEXT NOT NULL,"
                " cbd TEXT NOT NULL, deep INTEGER NOT NULL)"
            )

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            yield db

    def digest(self) -> str | None:
        with self._db() as db:
            row = db.execute("SELECT digest FROM graph").fetchone()
        return None if row is None else str(row[0])

    def digests(self) -> tuple[dict[str, str], set[str]]:
        """Every subject's digest, and the subjects whose description nests deeper."""
        with self._db() as db:
            rows = db.execute("SELECT iri, digest, deep FROM subjects").fetchall()
        return {iri: digest for iri, digest, _ in rows}, {iri for iri, _, deep in rows if deep}

    def described(self, iris: Sequence[str]) -> dict[str, list[ox.Triple]]:
        out: dict[str, list[ox.Triple]] = {}
        with self._db() as db:
            for iri in iris:
                row = db.execute("SELECT cbd FROM subjects WHERE iri = ?", (iri,)).fetchone()
                if row is not None:
                    out[iri] = [q.triple for q in ox.parse(row[0].encode(), ox.RdfFormat.N_TRIPLES)]
        return out

    def record(self, rows: Sequence[tuple[str, str | None, Sequence[ox.Triple]]], digest: str | None) -> None:
        """Keep (subject, digest, description) rows (a None digest: the subject is gone)
        and, if given, the graph's digest, in one transaction."""
        with self._db() as db:
            for iri, subject_digest, cbd in rows:
                if subject_digest is None:
                    db.execute("DELETE FROM subjects WHERE iri = ?", (iri,))
                    continue
                text = (ox.serialize(list(cbd), format=ox.RdfFormat.N_TRIPLES) or b"").decode()
                db.execute(
                    "INSERT OR REPLACE INTO subjects VALUES (?, ?, ?, ?)",
                    (iri, subject_digest, text, int(_deep(iri, cbd))),
                )
            if digest is not None:
                db.execute("INSERT OR REPLACE INTO graph VALUES (0, ?)", (digest,))


#: told (source name, old triples, new triples, (old, new) graph digests) of each change
Watcher = Callable[[str, Sequence[ox.Triple], Sequence[ox.Triple], tuple[str, str]], Any]


class StoreWatch:
    """Polls one remote store for changes and tells ``watchers`` (``gateway.notify``)."""

    def __init__(
        self,
        store: RemoteStore,
        name: str,
        path: Path,
        interval: float = DEFAULT_WATCH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.name, self.interval, self.clock = store, name, interval, clock
        self.seen = Seen(path)
        self.watchers: list[Watcher] = []
        self._next = float("-inf")  # the first check is due at once
        self.checked_at: float | None = None  # wall-clock times, for the health report
        self.changed_at: float | None = None
        self._lock = threading.Lock()  # the background poll and an owner's call, one at a time

    def due(self) -> bool:
        return self.clock() >= self._next

    def changed_now(self) -> None:
        """Make the next check due at once (the store's owner says it changed)."""
        self._next = float("-inf")

    def poll(self) -> int:
        """Check the store; tell the watchers what changed since the last version seen.
        The number of subjects that changed. Raises ``UpstreamError`` if the store cannot
        be read: nothing is recorded then, so the next poll finds the change."""
        with self._lock:
            return self._poll()

    def _poll(self) -> int:
        self._next = self.clock() + self.interval
        digest = self.store.graph_digest()
        seen = self.seen.digest()
        self.checked_at = time.time()
        if digest == seen:
            return 0
        now = self.store.subject_digests()
        if seen is None:  # the first poll: record, tell nobody
            self._record(sorted(now), now, {}, digest)
            return 0
        before, deep = self.seen.digests()
        changed = sorted({s for s in now.keys() | before.keys() if now.get(s) != before.get(s)} | deep)
        count = self._record(changed, now, before, digest, (seen, digest))
        if count:
            self.changed_at = time.time()
            log.info("source %s: %d resources changed in the store", self.name, count)
        return count

    def _record(
        self,
        subjects: Sequence[str],
        now: dict[str, str],
        before: dict[str, str],
        digest: str,
        versions: tuple[str, str] | None = None,
    ) -> int:
        """Read ``subjects`` anew, tell the watchers (if ``versions``), keep them as seen;
        the graph's digest only with the last chunk. How many really changed."""
        count = 0
        for start in range(0, max(len(subjects), 1), _CHUNK):
            chunk = subjects[start : start + _CHUNK]
            new = {s: self.store.describe(s) if s in now else [] for s in chunk}
            last = start + _CHUNK >= len(subjects)
            if versions is not None:
                old = self.seen.described(chunk)
                moved = [s for s in chunk if set(old.get(s, ())) != set(new[s])]
                count += len(moved)
                if moved:
                    was = [t for s in moved for t in old.get(s, ())]
                    self._tell(was, [t for s in moved for t in new[s]], versions)
            rows = [(s, now.get(s), new[s]) for s in chunk]
            self.seen.record(rows, digest if last else None)
        return count

    def _tell(self, before: list[ox.Triple], after: list[ox.Triple], versions: tuple[str, str]) -> None:
        """A watcher that fails (its outbox cannot be written) fails the poll: the change
        is not recorded as seen, so the next poll offers it again (nothing lost)."""
        for watcher in self.watchers:
            watcher(self.name, before, after, versions)

    def health(self) -> dict[str, Any]:
        return {
            "every": self.interval,
            "checked_at": _iso(self.checked_at),
            "changed_at": _iso(self.changed_at),
        }


def _iso(t: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if t is not None else None
