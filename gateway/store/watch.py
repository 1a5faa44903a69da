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
2. **Which resources?** When the digest moved, the same digest per subject
   (``subject_digest_query``: each subject's own triples, blank nodes' too, keyed by
   label) is compared with the digests kept from the last poll. The named subjects
   whose digest differs, appeared or went, and the owners (the named subject whose
   description holds it, as last seen) of the blank nodes whose digest did, are read
   anew, many per query (``RemoteStore.describe_many``): so a change at any depth of
   blank nodes is found, in one scan. (A store that gives blank nodes no label to key
   them by, which SPARQL allows, changes only in digests of named subjects; when only
   the graph's digest moved, every subject with blank nodes is read anew.)
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

__all__ = ["DEFAULT_WATCH", "Seen", "StoreWatch", "digest_query", "subject_digest_query"]

log = logging.getLogger("dsgo.sources")

#: seconds between checks of a remote store when its table does not say (``watch``)
DEFAULT_WATCH = 30.0
#: subjects read and handed to the watchers at once (their old and new descriptions in
#: memory), and the triples they may hold: half Virtuoso's default ResultSetMaxRows
_CHUNK = 500
_ROWS = 5000
_HEX = '"0123456789abcdef"'


def _term(var: str) -> str:
    """A term as text: an IRI, a literal with its language and datatype, a blank node by
    its label where the store gives one (Virtuoso does; a stricter store gives "")."""
    literal = f'CONCAT("\\"", STR({var}), "\\"@", LANG({var}), "^", COALESCE(STR(DATATYPE({var})), ""))'
    blank = f'CONCAT("_:", COALESCE(STR({var}), ""))'
    return f"IF(isBlank({var}), {blank}, IF(isLiteral({var}), {literal}, STR({var})))"


def _number(first: int) -> str:
    """A 28-bit number from 7 hex digits of ``?h``, from ``first`` on."""
    return " + ".join(
        f"STRLEN(STRBEFORE({_HEX}, SUBSTR(?h, {first + i}, 1))) * {16 ** (6 - i)}" for i in range(7)
    )


#: the count and two sums of 28 bits of each row's ``?h``: an order-independent digest
_AGGREGATES = f"(COUNT(*) AS ?n) (SUM({_number(1)}) AS ?a) (SUM({_number(8)}) AS ?b)"


def digest_query(dataset: str) -> str:
    """Count and sums over every triple of the graph (``dataset``: its FROM clause).
    Each MD5 is computed once, in a subquery: Virtuoso 7.2 computes a bound ``?h`` again
    for every use (14 times per triple, 7x slower)."""
    text = f'CONCAT({_term("?s")}, " ", STR(?p), " ", {_term("?o")})'
    return f"SELECT {_AGGREGATES} WHERE {{ {{ SELECT (MD5({text}) AS ?h) {dataset}WHERE {{ ?s ?p ?o }} }} }}"


def subject_digest_query(dataset: str, after: ox.Literal, limit: int) -> str:
    """Count and sums per subject (``?s``; ``?k``, its text, to page by) over its own
    triples, for the ``limit`` subjects after ``after``."""
    text = f'CONCAT(STR(?p), " ", {_term("?o")})'
    where = f"WHERE {{ ?s ?p ?o FILTER(STR(?s) > {after}) }}"
    inner = f"SELECT ?s (STR(?s) AS ?k) (MD5({text}) AS ?h) {dataset}{where}"
    return f"SELECT ?s ?k {_AGGREGATES} WHERE {{ {{ {inner} }} }} GROUP BY ?s ?k ORDER BY ?k LIMIT {limit}"


def key_of(term: ox.NamedNode | ox.BlankNode | ox.Literal) -> str:
    """A subject's key among the digests: an IRI itself, a blank node ``_:label``."""
    return f"_:{term.value}" if isinstance(term, ox.BlankNode) else term.value


def _blanks(cbd: Sequence[ox.Triple]) -> set[str]:
    return {key_of(t.subject) for t in cbd if isinstance(t.subject, ox.BlankNode)}


def _chunks(subjects: Sequence[str], now: dict[str, str]) -> list[list[str]]:
    """``subjects`` in chunks of at most ``_CHUNK`` that hold at most ``_ROWS`` triples by
    their digests' counts (one larger subject alone); at least one chunk, maybe empty."""
    chunks: list[list[str]] = [[]]
    rows = 0
    for s in subjects:
        weight = 2 * int(now.get(s, "1").split(":")[0]) or 1  # its own triples, blank nodes' guessed
        if chunks[-1] and (len(chunks[-1]) >= _CHUNK or rows + weight > _ROWS):
            chunks.append([])
            rows = 0
        chunks[-1].append(s)
        rows += weight
    return chunks


Row = tuple[str, str | None, str, str | None]


class Seen:
    """The graph as last seen, on disk: its digest, and per subject (``key_of``) a digest;
    for a named subject its description (N-Triples) and whether it holds blank nodes,
    for a blank node the named subject whose description holds it. One short connection
    per use: a poll is seconds apart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS graph (id INTEGER PRIMARY KEY CHECK (id = 0), digest TEXT)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS subjects (key TEXT PRIMARY KEY, digest TEXT NOT NULL,"
                " cbd TEXT NOT NULL, owner TEXT)"
            )

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            yield db

    def digest(self) -> str | None:
        with self._db() as db:
            row = db.execute("SELECT digest FROM graph").fetchone()
        return None if row is None else str(row[0])

    def digests(self) -> tuple[dict[str, str], dict[str, str], set[str]]:
        """Every subject's digest; each blank node's owner; the named subjects whose
        description holds blank nodes."""
        with self._db() as db:
            rows = db.execute("SELECT key, digest, owner, instr(cbd, '_:') > 0 FROM subjects").fetchall()
        owners = {key: owner for key, _, owner, _ in rows if owner}
        blanky = {key for key, _, owner, has in rows if not key.startswith("_:") and has}
        return {key: digest for key, digest, _, _ in rows}, owners, blanky

    def described(self, iris: Sequence[str]) -> dict[str, list[ox.Triple]]:
        out: dict[str, list[ox.Triple]] = {}
        with self._db() as db:
            for iri in iris:
                row = db.execute("SELECT cbd FROM subjects WHERE key = ?", (iri,)).fetchone()
                if row is not None:
                    out[iri] = [q.triple for q in ox.parse(row[0].encode(), ox.RdfFormat.N_TRIPLES)]
        return out

    def record(self, rows: Sequence[Row], digest: str | None) -> None:
        """Keep (key, digest, description, owner) rows (a None digest: the subject is
        gone) and, if given, the graph's digest, in one transaction."""
        with self._db() as db:
            for key, subject_digest, cbd, owner in rows:
                if subject_digest is None:
                    db.execute("DELETE FROM subjects WHERE key = ?", (key,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO subjects VALUES (?, ?, ?, ?)",
                        (key, subject_digest, cbd, owner),
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
            self._record(sorted(k for k in now if not k.startswith("_:")), set(now), now, {}, digest)
            return 0
        before, owners, blanky = self.seen.digests()
        moved = {k for k in now.keys() | before.keys() if now.get(k) != before.get(k)}
        iris = {k for k in moved if not k.startswith("_:")} | {owners[k] for k in moved if k in owners}
        if not moved:  # the store keys no blank nodes: read every subject that has some
            iris = blanky
        count = self._record(sorted(iris), moved, now, owners, digest, (seen, digest))
        if count:
            self.changed_at = time.time()
            log.info("source %s: %d resources changed in the store", self.name, count)
        return count

    def _record(
        self,
        iris: Sequence[str],
        moved: set[str],
        now: dict[str, str],
        owners: dict[str, str],
        digest: str,
        versions: tuple[str, str] | None = None,
    ) -> int:
        """Read ``iris`` anew, tell the watchers (if ``versions``), keep them as seen (and
        the blank nodes their descriptions hold, and the other ``moved`` blank nodes'
        digests); the graph's digest only with the last chunk. How many changed."""
        count = 0
        chunks = _chunks(iris, now)
        kept: set[str] = set()
        for i, chunk in enumerate(chunks):
            read = self.store.describe_many([s for s in chunk if s in now])
            new = {s: read.get(s, []) for s in chunk}
            if versions is not None:
                old = self.seen.described(chunk)
                changed = [s for s in chunk if set(old.get(s, ())) != set(new[s])]
                count += len(changed)
                if changed:
                    was = [t for s in changed for t in old.get(s, ())]
                    self._tell(was, [t for s in changed for t in new[s]], versions)
            rows: list[Row] = []
            for s in chunk:
                rows.append((s, now.get(s), _nt(new[s]), None))
                for blank in _blanks(new[s]) - kept:
                    rows.append((blank, now.get(blank, ""), "", s))
                    kept.add(blank)
            if i == len(chunks) - 1:  # blank nodes no description read holds (now)
                rows += [
                    (k, now.get(k), "", owners.get(k)) for k in sorted(moved - kept) if k.startswith("_:")
                ]
            self.seen.record(rows, digest if i == len(chunks) - 1 else None)
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


def _nt(triples: Sequence[ox.Triple]) -> str:
    return (ox.serialize(list(triples), format=ox.RdfFormat.N_TRIPLES) or b"").decode()


def _iso(t: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if t is not None else None
