"""A node's data in a SPARQL 1.1 server, read live: nothing is copied into the node.

``RemoteStore`` offers the reads ``Access`` (the one enforcement point) makes of a
``Store`` (``describe``, ``members``, ``objects``, ``subjects``, ``generation``,
``sources``), each answered by one or a few SPARQL queries (SPARQL 1.1 Protocol §2.1.2,
query by POST). The policy engine then decides on what came back exactly as it does for
the embedded store, so every read path that goes through ``Access`` is enforced alike.

What it cannot offer is ``named_subjects``: a per-caller SPARQL view would need every
resource of the store materialised in the node. So a node on a remote store offers no
``/sparql`` (and says so in ``/capabilities``); resources, collections, the
self-description and the federation's batch reads are offered.

Freshness: a remote store cannot tell cheaply when it changed, so ``generation`` is a
time bucket of ``cache_ttl`` seconds (default 2): the node's representation cache is
emptied when a bucket ends, and a change in the store shows within ``cache_ttl``
seconds. ``cache_ttl = 0`` makes every read go to the store. Like any SPARQL client
without transactions, the few queries behind one answer (a description, the values a
policy condition looks up) are not one snapshot: a change made between them can show
in one and not yet in the other.

Changes other writers make are not seen by ``generation`` alone: for change
notifications, ``RemoteSources.watch_changes`` polls the store every ``watch`` seconds
(``gateway.store.watch``: a digest of the graph, then per resource) and tells the
notifier which resources changed.

Without ``graph``, queries run on the endpoint's default graph; Virtuoso's is the union
of all its graphs, system graphs included, so name the party's graph.

Safety and failures: an IRI goes into a query only if it is a valid absolute IRI (SPARQL
1.1 Query §19.8, IRIREF: no ``<>"{}|^`\\``, no spaces or controls); any other value
cannot name a resource and reads as nothing, without a query. A store that cannot be
reached, times out, refuses a query or cuts an answer short (Virtuoso's
``ResultSetMaxRows``, signalled by ``X-SPARQL-MaxRows``) raises ``UpstreamError`` (502)
naming the endpoint: the request fails closed, nothing half-read is decided on, and the
failure shows in ``/health`` until the store answers again.

Answers are SPARQL JSON results (§ "SPARQL 1.1 Query Results JSON Format"), read here
rather than by pyoxigraph's parser because Virtuoso 7.2 writes blank nodes as
``nodeID://b10000`` (which pyoxigraph rejects), ``typed-literal`` terms and booleans as
``1``/``0``; and SELECT rather than CONSTRUCT, because Virtuoso cuts a CONSTRUCT at
``ResultSetMaxRows`` without saying so.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyoxigraph as ox

from gateway import __version__
from gateway.config import SourceSettings
from gateway.errors import NotFound, UpstreamError
from gateway.store.local import SourceState
from gateway.store.watch import DEFAULT_WATCH, StoreWatch, digest_query, key_of, subject_digest_query

__all__ = [
    "DEFAULT_CACHE_TTL",
    "DEFAULT_TIMEOUT",
    "SPARQL_NOT_OFFERED",
    "RemoteSources",
    "RemoteStore",
    "sparql_iri",
]

log = logging.getLogger("dsgo.sources")

DEFAULT_TIMEOUT = 5.0
#: seconds a check for changes may take: it scans the graph in the store (bench_watch)
WATCH_TIMEOUT = 120.0
DEFAULT_CACHE_TTL = 2.0
#: why a node on a remote store offers no /sparql (capabilities and the refusal say it)
SPARQL_NOT_OFFERED = (
    "this node reads its data live from a SPARQL store and copies nothing into itself; "
    "a query over your view would need that view copied in, so /sparql is not offered: "
    "read resources, collections or POST /resources instead"
)
#: blank nodes nested deeper than this under one resource are refused, not cut short
MAX_DEPTH = 16
_PAGE = 1000  # members per query (below Virtuoso's default ResultSetMaxRows of 10000)
_RESULTS = "application/sparql-results+json"
_XSD_BOOLEAN = "http://www.w3.org/2001/XMLSchema#boolean"
_ILLEGAL = re.compile(r'[\x00-\x20<>"{}|^`\\]')
_LABEL = re.compile(r"[A-Za-z0-9_]+")

Term = ox.NamedNode | ox.BlankNode | ox.Literal
Row = dict[str, Term]


def sparql_iri(value: str) -> str | None:
    """``<value>`` ready for a query, or None if ``value`` is not an absolute IRI."""
    if _ILLEGAL.search(value):
        return None
    try:
        return str(ox.NamedNode(value))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Failure:
    error: UpstreamError
    at: float


class RemoteStore:
    """A SPARQL 1.1 endpoint read as the node's store. Thread-safe; reads block, so the
    HTTP edge calls them in worker threads."""

    def __init__(
        self,
        endpoint: str,
        graph: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint, self.graph, self.timeout, self.cache_ttl = endpoint, graph, timeout, cache_ttl
        self.clock = clock  # what cache_ttl's time buckets are counted in
        dataset = sparql_iri(graph) if graph is not None else ""
        if dataset is None:
            raise ValueError(f"graph {graph!r} is not an absolute IRI")
        #: the dataset clause of every query: the configured graph, else the default graph
        self._from = f"FROM {dataset} " if dataset else ""
        self._http = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            follow_redirects=False,
            # Virtuoso closes the connection after every gzipped answer: ask for none
            headers={"user-agent": f"dsgo-gateway/{__version__}", "accept-encoding": "identity"},
        )
        self._ticks = itertools.count()
        self.failure: _Failure | None = None
        self.checked_at: float | None = None
        self.empty: bool | None = None

    @classmethod
    def from_settings(
        cls, source: SourceSettings, clock: Callable[[], float] = time.monotonic
    ) -> RemoteStore:
        options = source.options
        return cls(
            str(options["endpoint"]),
            options.get("graph"),
            timeout=float(options.get("timeout", DEFAULT_TIMEOUT)),
            cache_ttl=float(options.get("cache_ttl", DEFAULT_CACHE_TTL)),
            clock=clock,
        )

    @property
    def generation(self) -> int:
        """Changes every ``cache_ttl`` seconds (at every read when it is 0): the node's
        caches key on it, so nothing derived from the store outlives ``cache_ttl``."""
        if self.cache_ttl > 0:
            return int(self.clock() // self.cache_ttl)
        return next(self._ticks)

    # -- reads (the Store API that Access uses) ---------------------------------------

    def describe(self, iri: str) -> list[ox.Triple]:
        """The concise bounded description of ``iri``: its triples and those of the blank
        nodes reached from them, to any depth up to ``MAX_DEPTH``. One query when the
        resource has no blank nodes, one more per few levels of nesting."""
        subject = sparql_iri(iri)
        if subject is None:
            return []
        node = ox.NamedNode(iri)
        out: dict[ox.Triple, None] = {}  # a set that keeps the store's order
        for row in self._select(f"SELECT ?p0 ?o0 {self._from}WHERE {{ {subject} ?p0 ?o0 }}"):
            out[self._triple(node, row["p0"], row["o0"])] = None
        frontier = {o for t in out if isinstance(o := t.object, ox.BlankNode)}
        described: set[ox.BlankNode] = set()
        low = 1
        while not frontier <= described:  # some blank node's triples are still unread
            if low > MAX_DEPTH:
                raise self._fail(f"nests blank nodes deeper than {MAX_DEPTH} levels under <{iri}>")
            # level 1 alone (most nesting is one level: a quantity, an address), then
            # levels 2-4, 5-10, 11-16: deep nesting costs few round trips
            high = min(low if low == 1 else 2 * low, MAX_DEPTH)
            frontier = set()
            for row in self._select(_levels(subject, low, high, self._from)):
                for depth in range(low, high + 1):
                    s = row.get(f"b{depth}")  # also bound in deeper levels' rows, as a link
                    if isinstance(s, ox.BlankNode) and f"p{depth}" in row:
                        t = self._triple(s, row[f"p{depth}"], row[f"o{depth}"])
                        out[t] = None
                        described.add(s)
                        if depth == high and isinstance(t.object, ox.BlankNode):
                            frontier.add(t.object)
            low = high + 1
        return list(out)

    def describe_many(self, iris: Sequence[str]) -> dict[str, list[ox.Triple]]:
        """``describe`` of each of ``iris``, read together (``gateway.store.watch`` reads
        many at once): their own triples in one query, their blank nodes level by level as
        ``describe`` reads them, for all of them at once. The caller keeps the answer
        under the store's row limit; a cut answer raises, as always."""
        out: dict[str, dict[ox.Triple, None]] = {iri: {} for iri in iris}
        roots = {iri: r for iri in iris if (r := sparql_iri(iri)) is not None}
        if roots:
            values = f"VALUES ?r {{ {' '.join(roots.values())} }} "
            for row in self._select(f"SELECT ?r ?p0 ?o0 {self._from}WHERE {{ {values}?r ?p0 ?o0 }}"):
                root = row["r"]
                if isinstance(root, ox.NamedNode) and root.value in out:
                    out[root.value][self._triple(root, row["p0"], row["o0"])] = None
        nested = {iri: out[iri] for iri in roots if any(isinstance(t.object, ox.BlankNode) for t in out[iri])}
        if nested:
            self._nested({iri: roots[iri] for iri in nested}, nested)
        return {iri: list(triples) for iri, triples in out.items()}

    def _nested(self, roots: dict[str, str], out: dict[str, dict[ox.Triple, None]]) -> None:
        """Add the triples of the blank nodes under each of ``roots`` to its ``out``, at
        any depth up to ``MAX_DEPTH``, as ``describe`` does for one."""
        frontier = {iri: {o for t in out[iri] if isinstance(o := t.object, ox.BlankNode)} for iri in roots}
        described: dict[str, set[ox.BlankNode]] = {iri: set() for iri in roots}
        low = 1
        while pending := [iri for iri in roots if not frontier[iri] <= described[iri]]:
            if low > MAX_DEPTH:
                raise self._fail(f"nests blank nodes deeper than {MAX_DEPTH} levels under <{pending[0]}>")
            high = min(low if low == 1 else 2 * low, MAX_DEPTH)
            frontier = {iri: set() for iri in roots}
            values = " ".join(roots[iri] for iri in pending)
            for row in self._select(_levels("?r", low, high, self._from, values)):
                iri = row["r"].value
                for depth in range(low, high + 1):
                    s = row.get(f"b{depth}")
                    if isinstance(s, ox.BlankNode) and f"p{depth}" in row and iri in out:
                        t = self._triple(s, row[f"p{depth}"], row[f"o{depth}"])
                        out[iri][t] = None
                        described[iri].add(s)
                        if depth == high and isinstance(t.object, ox.BlankNode):
                            frontier[iri].add(t.object)
            low = high + 1

    def objects(self, subject: str, predicate: str) -> list[Term]:
        s, p = sparql_iri(subject), sparql_iri(predicate)
        if s is None or p is None:
            return []
        return [row["o"] for row in self._select(f"SELECT ?o {self._from}WHERE {{ {s} {p} ?o }}")]

    def subjects(self, predicate: str, obj: str) -> list[str]:
        p, o = sparql_iri(predicate), sparql_iri(obj)
        if p is None or o is None:
            return []
        query = f"SELECT DISTINCT ?s {self._from}WHERE {{ ?s {p} {o} FILTER isIRI(?s) }}"
        return [row["s"].value for row in self._select(query)]

    def members(self, class_iri: str, namespace: str) -> list[str]:
        """Sorted IRIs of the resources in ``namespace`` typed ``class_iri``."""
        cls = sparql_iri(class_iri)
        return self._subjects(f"?s a {cls}", namespace) if cls is not None else []

    def class_counts(self, namespace: str) -> dict[str, int]:
        """Distinct resources of ``namespace`` per class, unfiltered (for callers who may
        see everything, and to know which classes to count for the others)."""
        query = (
            f"SELECT ?c (COUNT(DISTINCT ?s) AS ?n) {self._from}WHERE {{ ?s a ?c "
            f"FILTER(isIRI(?c) && isIRI(?s) && STRSTARTS(STR(?s), {ox.Literal(namespace)})) }} GROUP BY ?c"
        )
        return {row["c"].value: int(row["n"].value) for row in self._select(query)}

    def resources(self, namespace: str) -> list[str]:
        """Sorted IRIs of every resource (subject) in ``namespace``: what a subscription
        to no class may match."""
        return self._subjects("?s ?p ?o", namespace)

    def _subjects(self, pattern: str, namespace: str) -> list[str]:
        """Sorted IRIs ``?s`` of ``pattern`` in ``namespace``, read in pages of ``_PAGE``
        (keyset paging: Virtuoso refuses ORDER BY past 10000 rows with OFFSET)."""
        prefix = ox.Literal(namespace)
        found: list[str] = []
        after = ""
        while True:
            query = (
                f"SELECT DISTINCT ?s {self._from}WHERE {{ {pattern} FILTER(isIRI(?s) && "
                f"STRSTARTS(STR(?s), {prefix}) && STR(?s) > {ox.Literal(after)}) }} "
                f"ORDER BY STR(?s) LIMIT {_PAGE}"
            )
            page = [row["s"].value for row in self._select(query)]
            found += page
            if len(page) < _PAGE:
                return sorted(set(found))
            after = max(page)

    # -- change detection (``gateway.store.watch``) ----------------------------------

    def graph_digest(self) -> str:
        """A digest of every triple of the graph, computed by the store in one query with
        a one-row answer (``watch.digest_query``): equal digests, the same data."""
        [row] = self._select(digest_query(self._from), WATCH_TIMEOUT)
        return _digest(row)

    def subject_digests(self) -> dict[str, str]:
        """Each subject's digest over its own triples (``watch.key_of``: blank nodes too,
        by label), in keyset pages of ``_PAGE``. Scans the graph: the store may take
        longer than ``timeout``, so these queries may take ``WATCH_TIMEOUT``."""
        found: dict[str, str] = {}
        after = ""
        while True:
            query = subject_digest_query(self._from, ox.Literal(after), _PAGE)
            page = self._select(query, WATCH_TIMEOUT)
            for row in page:
                found[key_of(row["s"])] = _digest(row)
            if len(page) < _PAGE:
                return found
            after = max(row["k"].value for row in page)

    def sources(self) -> dict[str, SourceState]:
        """No versions are loaded into the node: nothing to list."""
        return {}

    def named_subjects(self) -> list[ox.NamedNode]:
        """Not offered: it would copy the whole store into the node."""
        raise NotFound(SPARQL_NOT_OFFERED)

    def check(self) -> bool:
        """Ask the store whether it holds any data (the health probe); True if it does."""
        answer = self._request(f"ASK {self._from}WHERE {{ ?s ?p ?o }}")
        value = answer.get("boolean")
        if not isinstance(value, bool):
            raise self._fail("answered ASK without a boolean")
        self.empty = not value
        return value

    def close(self) -> None:
        self._http.close()

    # -- the wire --------------------------------------------------------------------

    def _select(self, query: str, timeout: float | None = None) -> list[Row]:
        answer = self._request(query, timeout)
        try:
            bindings = answer["results"]["bindings"]
            return [{name: _term(value) for name, value in b.items()} for b in bindings]
        except (KeyError, TypeError, ValueError) as exc:
            raise self._fail(f"answered with SPARQL results this node cannot read ({exc})") from None

    def _request(self, query: str, timeout: float | None = None) -> dict[str, Any]:
        limit = (
            httpx.Timeout(timeout, connect=min(self.timeout, 3.0)) if timeout else httpx.USE_CLIENT_DEFAULT
        )
        try:
            answer = self._http.post(
                self.endpoint, data={"query": query}, headers={"accept": _RESULTS}, timeout=limit
            )
        except httpx.TimeoutException:
            raise self._fail(f"did not answer within {timeout or self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise self._fail(f"cannot be reached ({exc or type(exc).__name__})") from None
        if answer.status_code != 200:
            first = answer.text.strip().splitlines()[0][:200] if answer.text.strip() else ""
            raise self._fail(f"answered {answer.status_code}" + (f": {first}" if first else ""))
        cut = answer.headers.get("x-sparql-maxrows")
        if cut is not None:
            raise self._fail(
                f"cut its answer at {cut} rows; raise its result limit (Virtuoso: ResultSetMaxRows)"
            )
        try:
            data = orjson.loads(answer.content)
        except orjson.JSONDecodeError:
            raise self._fail("answered with something other than SPARQL JSON results") from None
        if not isinstance(data, dict):
            raise self._fail("answered with something other than SPARQL JSON results")
        self.failure, self.checked_at = None, time.time()
        return data

    def _triple(self, s: ox.NamedNode | ox.BlankNode, p: Term, o: Term) -> ox.Triple:
        if not isinstance(p, ox.NamedNode):
            raise self._fail(f"answered a predicate that is not an IRI ({p})")
        return ox.Triple(s, p, o)

    def _fail(self, reason: str) -> UpstreamError:
        error = UpstreamError(
            f"the node's SPARQL store {self.endpoint} {reason}; its data cannot be read until it answers"
        )
        self.failure, self.checked_at = _Failure(error, time.time()), time.time()
        return error


def _digest(row: Row) -> str:
    """``count:sum:sum`` of a digest query's row (an empty group sums to nothing)."""
    return ":".join(row[k].value if k in row else "0" for k in ("n", "a", "b"))


def _levels(subject: str, low: int, high: int, dataset: str, roots: str = "") -> str:
    """One query for the triples of the blank nodes ``low`` to ``high`` hops from
    ``subject`` through blank nodes only; level ``d`` binds ``?bd ?pd ?od``. With
    ``roots`` (IRIs), ``subject`` is ``?r`` bound to each of them, and selected."""
    branches = []
    for d in range(low, high + 1):
        chain = "".join(f" ?b{i} ?x{i} ?b{i + 1} ." for i in range(1, d))
        blank = " && ".join(f"isBlank(?b{i})" for i in range(1, d + 1))
        branches.append(f"{{ {subject} ?x0 ?b1 .{chain} FILTER({blank}) ?b{d} ?p{d} ?o{d} }}")
    variables = " ".join(f"?b{d} ?p{d} ?o{d}" for d in range(low, high + 1))
    if roots:
        return (
            f"SELECT ?r {variables} {dataset}WHERE {{ VALUES ?r {{ {roots} }} {' UNION '.join(branches)} }}"
        )
    return f"SELECT {variables} {dataset}WHERE {{ {' UNION '.join(branches)} }}"


def _term(value: Mapping[str, str]) -> Term:
    """One RDF term of a SPARQL JSON result, including Virtuoso 7's dialect of it."""
    kind, text = value["type"], value["value"]
    if kind == "uri":
        return ox.NamedNode(text)
    if kind == "bnode":
        label = text.removeprefix("nodeID://")
        if not _LABEL.fullmatch(label):  # keep labels distinct, and valid for pyoxigraph
            label = "h" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
        return ox.BlankNode(label)
    if kind in ("literal", "typed-literal"):
        if "xml:lang" in value:
            return ox.Literal(text, language=value["xml:lang"])
        datatype = value.get("datatype")
        if datatype is None:
            return ox.Literal(text)
        if datatype == _XSD_BOOLEAN and text in ("1", "0"):
            text = "true" if text == "1" else "false"
        return ox.Literal(text, datatype=ox.NamedNode(datatype))
    raise ValueError(f"unsupported term type {kind!r}")


class RemoteSources:
    """The sources of a node on a remote store, as ``gateway.store.sources.Sources`` offers
    them to the HTTP edge: a refresh that asks the store whether it answers (and, when
    the node notifies of changes, whether its data changed: ``watch``), and the health
    report of that one source."""

    def __init__(self, settings: SourceSettings, store: RemoteStore) -> None:
        self.name = settings.name
        self.store = store
        #: seconds between checks for changes (the table's ``watch``; 0: never)
        self.interval = float(settings.options.get("watch", DEFAULT_WATCH))
        self.watch: StoreWatch | None = None

    def watch_changes(self, path: Path, clock: Callable[[], float] = time.monotonic) -> StoreWatch | None:
        """Start finding the changes others make in the store (``gateway.store.watch``),
        the last version seen kept at ``path``; None if the table says ``watch = 0``."""
        if self.interval <= 0:
            return None
        self.watch = StoreWatch(self.store, self.name, path, self.interval, clock)
        return self.watch

    def refresh_all(self, serving: bool = True) -> bool:
        """Probe the store (called at start and every poll interval) and, when a check for
        changes is due, make it; never raises. Data is never loaded into the node: always
        False (the watchers hear of changes). The probe at start (not ``serving`` yet)
        makes no check: a check scans the whole graph (seconds per 100,000 triples), and
        the node serves while the watcher's first pass makes it, moments later."""
        with contextlib.suppress(UpstreamError):  # kept in store.failure for the health report
            self.store.check()
            if self.watch is not None and serving and self.watch.due():
                self._poll(self.watch)
        return False

    def _poll(self, watch: StoreWatch) -> None:
        try:
            watch.poll()
        except UpstreamError as exc:
            log.warning("source %s: changes not checked, tried again later: %s", self.name, exc.detail)
        except Exception:  # the watchers could not keep the change: it is offered again
            log.exception("source %s: a change could not be recorded; tried again later", self.name)

    def failed_names(self) -> list[str]:
        """This one source, while the store does not answer (answers may miss its data)."""
        return [self.name] if self.store.failure else []

    def health(self) -> dict[str, Any]:
        store = self.store
        failure = store.failure
        status = "failed" if failure else {None: "unknown", True: "empty", False: "ok"}[store.empty]
        entry: dict[str, Any] = {
            "type": "sparql",
            "endpoint": store.endpoint,
            "graph": store.graph,
            "status": status,
            "checked_at": _iso(store.checked_at) if store.checked_at else None,
            "cache_ttl": store.cache_ttl,
        }
        if self.watch is not None:
            entry["watch"] = self.watch.health()
        if failure:
            entry["error"] = {
                "code": failure.error.code,
                "detail": failure.error.detail,
                "line": None,
                "at": _iso(failure.at),
            }
        return {self.name: entry}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
