"""Link traversal: follow live links across nodes, evaluate in memory, report honestly.

1. Start IRIs (given, or the ones the query names) are dereferenced.
2. From every fetched document, links are followed whose predicate the query mentions
   (or every link, depth-bounded, in ``follow="all"``); collection pages are always
   followed through ``hydra:member`` and ``hydra:next``.
3. An IRI is fetched only from the node whose namespace owns it according to the
   registry; an IRI no active party owns is never fetched (no request to arbitrary
   hosts). The asking node's own namespace is read locally through its own policy.
4. Each round fetches the new IRIs of every node in parallel (``gateway.federation.fetch``:
   batches where offered, streamed, bounded); loops end because no IRI is fetched twice.
5. Budgets (documents, depth, total time, per-node time) and limits (bytes and triples
   per document, batch and query: ``gateway.federation.limits``) bound the walk; whatever
   cut it short, failed or was withheld is in the report, and ``complete`` says whether
   the answer could be missing anything.
6. The query runs, off the event loop, over an in-memory pyoxigraph store with one named
   graph per document (for per-row provenance); it is dropped when the query ends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyoxigraph as ox

from gateway.errors import BadRequest, GatewayError, RegistryUnavailable
from gateway.federation.fetch import NodeReport, Owner, Peer
from gateway.federation.limits import Allowance, Counter, Limits
from gateway.federation.sparqltext import mentioned_iris
from gateway.identity.client import TokenClient
from gateway.identity.parties import Party
from gateway.policy.notice import Withheld

__all__ = ["Budget", "Federation", "Limits", "Outcome", "Owner", "Progress", "Read"]

_HYDRA = "http://www.w3.org/ns/hydra/core#"
_STRUCTURAL = {_HYDRA + "member", _HYDRA + "next"}  # a collection's members, and its next page


@dataclass(frozen=True, slots=True)
class Budget:
    max_documents: int = 2000
    max_depth: int = 4
    timeout: float = 10.0
    node_timeout: float = 5.0
    concurrency: int = 4
    follow: str = "predicates"  # or "all"
    limits: Limits = field(default_factory=Limits)


@dataclass
class Outcome:
    kind: str  # "select" | "ask" | "graph"
    variables: list[str]
    rows: list[dict[str, Any]]
    boolean: bool | None
    triples: list[ox.Triple]
    report: dict[str, Any]
    sources: list[list[str]] | None = None  # per row: the documents behind it


@dataclass(frozen=True, slots=True)
class Read:
    """One document read from its owner as a federated query reads it: with this node's
    token, the owner's policy applied. ``status`` is "ok", "not found" (absent or not
    visible: the same to us), "unregistered" (no party owns it: not fetched) or why the
    read failed; ``withheld`` and ``told`` are what the owner said it withheld (how many
    fields, which)."""

    iri: str
    owner: Owner | None
    triples: list[ox.Triple]
    status: str
    withheld: int = 0
    seconds: float = 0.0
    told: Withheld = field(default_factory=Withheld)


#: the asking node's own documents: (triples, withheld count) per document
LocalRead = Callable[[list[str]], Awaitable[dict[str, tuple[list[ox.Triple], int]]]]
Progress = Callable[[dict[str, Any]], None]
Documents = dict[str, list[ox.Triple]]


class Federation:
    """The asking node's query engine; one instance per node, one ``_Walk`` per query."""

    def __init__(
        self,
        me: str,
        namespace: str,
        tokens: TokenClient,
        parties: Callable[[], Awaitable[list[Party]]],
        local: LocalRead,
        prefixes: dict[str, str],
        clock: Callable[[], float] = time.time,
        *,
        registry_state: Callable[[], dict[str, Any]] | None = None,
        local_failed: Callable[[], Iterable[str]] = tuple,
        limits: Limits | None = None,
    ) -> None:
        self.me, self.namespace = me, namespace
        self.tokens = tokens
        self.parties = parties
        self.local = local
        self.prefixes = prefixes
        self.clock = clock
        #: the registry client's state for the report (None: not shown)
        self.registry_state = registry_state
        #: the names of this node's own sources that failed to read
        self.local_failed = local_failed
        #: the node's limits for reads outside a query (``read``, ``read_many``)
        self.limits = limits or Limits()
        self._batch_support: dict[str, tuple[float, bool]] = {}

    async def owners(self) -> list[Owner]:
        at = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        out: list[Owner] = []
        for party in await self.parties():
            if party.active_at(at) is None and party.endpoint:
                out.extend(Owner(party.party_id, ns, party.endpoint.rstrip("/")) for ns in party.namespaces)
        return sorted(out, key=lambda o: -len(o.namespace))

    async def run(
        self,
        query: str,
        start: Iterable[str] = (),
        budget: Budget = Budget(),
        progress: Progress | None = None,
        provenance: bool = False,
    ) -> Outcome:
        _check_parses(query, self.prefixes)
        walk = _Walk(self, query, budget, progress)
        await walk.walk(list(start))
        outcome = await asyncio.to_thread(
            evaluate, query, walk.fetched, self.prefixes, provenance, walk.deadline
        )
        outcome.report = walk.report()
        return outcome

    async def read(self, iri: str, within: float = 5.0) -> Read:
        """The document of ``iri`` from the node that owns it (for the workbench's pages),
        within the node's limits; nothing is kept."""
        doc = _document(iri)
        owner = _owner_of(doc, await self.owners())
        if owner is None:
            return Read(doc, None, [], "unregistered")
        report = NodeReport(owner.party_id, owner.endpoint)
        got = await self._peer_fetch(owner, [doc], report, within, batch=False)
        if doc not in got:
            status = report.failures[0]["reason"] if report.failures else "not found"
            return Read(doc, owner, [], status, seconds=report.seconds)
        return Read(doc, owner, got[doc], "ok", report.withheld, report.seconds, report.told)

    async def read_many(self, iris: Iterable[str], within: float = 5.0) -> Documents:
        """Many documents at once (a batch per owner where it offers one): those read."""
        owners = await self.owners()
        by_owner: dict[Owner, list[str]] = {}
        for doc in dict.fromkeys(_document(i) for i in iris):
            owner = _owner_of(doc, owners)
            if owner is not None:
                by_owner.setdefault(owner, []).append(doc)
        jobs = [
            self._peer_fetch(o, docs, NodeReport(o.party_id, o.endpoint), within)
            for o, docs in by_owner.items()
        ]
        out: Documents = {}
        for got in await asyncio.gather(*jobs):
            out.update(got)
        return out

    async def _peer_fetch(
        self, owner: Owner, docs: list[str], report: NodeReport, within: float, batch: bool = True
    ) -> Documents:
        budget = Budget(limits=self.limits)
        query = Allowance(Counter("query", self.limits.query_bytes, self.limits.query_triples))
        return await self.peer(owner, report, budget, query).fetch(docs, within, batch)

    def peer(self, owner: Owner, report: NodeReport, budget: Budget, query: Allowance) -> Peer:
        return Peer(
            self.tokens,
            owner,
            report,
            budget.limits,
            query,
            budget.concurrency,
            self._batch_support,
            self.clock,
        )


class _Walk:
    """The state of one query's walk: what was queued, fetched and reported, and what
    cut it short. Rounds go breadth first; each fetches a frontier from all nodes at once."""

    def __init__(self, fed: Federation, query: str, budget: Budget, progress: Progress | None) -> None:
        self.fed, self.budget, self.progress = fed, budget, progress
        self.began = time.monotonic()
        self.deadline = self.began + budget.timeout
        self.mentioned = mentioned_iris(query, fed.prefixes)
        self.follow_all = budget.follow == "all"
        self.reports: dict[str, NodeReport] = {}
        self.unregistered: set[str] = set()
        self.fetched: Documents = {}
        self.queued: set[str] = set()
        self.cut: str | None = None
        self.depth = 0
        limits = budget.limits
        self.query = Counter("query", limits.query_bytes, limits.query_triples)
        self.owners: list[Owner] = []

    async def walk(self, start: list[str]) -> None:
        self.owners = await self._owners()
        frontier = self._enqueue(_document(i) for i in (start or sorted(self.mentioned)))
        while frontier and self._room(frontier):
            frontier = frontier[: self.budget.max_documents - len(self.fetched)]
            await self._round(frontier)
            frontier = self._next(frontier)

    async def _owners(self) -> list[Owner]:
        """Who owns which namespace, within the query's time (a hung registry is a failed one)."""
        try:
            return await asyncio.wait_for(self.fed.owners(), max(self.deadline - time.monotonic(), 0.01))
        except TimeoutError:
            raise RegistryUnavailable(
                "the participant registry did not answer within the query's time limit"
            ) from None

    def _enqueue(self, docs: Iterable[str]) -> list[str]:
        fresh = []
        for doc in docs:
            if doc not in self.queued:
                self.queued.add(doc)
                fresh.append(doc)
        return fresh

    def _room(self, frontier: list[str]) -> bool:
        """May another round run? If not, or only for part of ``frontier``, say why."""
        room = self.budget.max_documents - len(self.fetched)
        if time.monotonic() > self.deadline:
            self.cut = "timeout"
        elif room <= 0 or len(frontier) > room:
            self.cut = "max_documents"
        return self.cut is None or (self.cut == "max_documents" and room > 0)

    async def _round(self, frontier: list[str]) -> None:
        remaining = max(self.deadline - time.monotonic(), 0.01)
        jobs = [self._fetch(owner, docs, remaining) for owner, docs in self._by_owner(frontier).items()]
        for result in await asyncio.gather(*jobs):
            self.fetched.update(result)
        if self.progress:
            self.progress({"depth": self.depth, "documents": len(self.fetched), "nodes": len(self.reports)})
        if self.query.exceeded and self.cut is None:
            self.cut = f"max_query_{self.query.exceeded}"

    def _by_owner(self, frontier: list[str]) -> dict[Owner | None, list[str]]:
        """The frontier per owning node (None: this node); unregistered IRIs are set aside."""
        by_owner: dict[Owner | None, list[str]] = {}
        for doc in frontier:
            own = doc.startswith(self.fed.namespace)
            owner = None if own else _owner_of(doc, self.owners)
            if owner is None and not own:
                self.unregistered.add(doc)
            else:
                by_owner.setdefault(owner, []).append(doc)
        return by_owner

    async def _fetch(self, owner: Owner | None, docs: list[str], remaining: float) -> Documents:
        if owner is None:
            return await self._local(docs)
        report = self.reports.setdefault(owner.party_id, NodeReport(owner.party_id, owner.endpoint))
        peer = self.fed.peer(owner, report, self.budget, Allowance(self.query))
        return await peer.fetch(docs, min(self.budget.node_timeout, remaining))

    async def _local(self, docs: list[str]) -> Documents:
        """This node's own namespace: read locally, through its own policy."""
        report = self.reports.setdefault(self.fed.me, NodeReport(self.fed.me, "local"))
        started = time.monotonic()
        got = await self.fed.local(docs)
        report.seconds += time.monotonic() - started
        report.read_at = self.fed.clock()
        report.documents += len(got)
        report.failed_sources.update(self.fed.local_failed())
        for _, withheld in got.values():
            report.add_withheld(withheld)
        return {doc: triples for doc, (triples, _) in got.items()}

    def _next(self, frontier: list[str]) -> list[str]:
        """The next round's frontier: the new links of this round's documents."""
        if self.cut is not None:
            return []
        self.depth += 1
        links = [
            target
            for doc in frontier
            for target in sorted(_document(link) for link in self._links(self.fetched.get(doc, [])))
            if target not in self.queued
        ]
        if self.depth > self.budget.max_depth:
            if links:
                self.cut = "max_depth"
            return []
        return self._enqueue(links)

    def _links(self, triples: list[ox.Triple]) -> set[str]:
        out = set()
        for t in triples:
            p = t.predicate.value
            if isinstance(t.object, ox.NamedNode) and (
                self.follow_all or p in self.mentioned or p in _STRUCTURAL
            ):
                out.add(t.object.value)
        return out

    def report(self) -> dict[str, Any]:
        nodes = self.reports.values()
        failed = any(r.failures or r.failed_sources for r in nodes)
        report: dict[str, Any] = {
            "complete": self.cut is None and not failed,
            "cut_short": self.cut,
            "depth": self.depth,
            "documents": len(self.fetched),
            "requests": sum(r.requests for r in nodes),
            "elapsed_ms": round((time.monotonic() - self.began) * 1000, 1),
            "nodes": {p: r.as_dict() for p, r in sorted(self.reports.items())},
            "not_fetched_unregistered": sorted(self.unregistered)[:20],
            "not_fetched_unregistered_count": len(self.unregistered),
        }
        if self.fed.registry_state is not None:
            report["registry"] = self.fed.registry_state()
        return report


def _check_parses(query: str, prefixes: dict[str, str]) -> None:
    """Refuse a query that does not parse before any request is made."""
    try:
        ox.Store().query(query, prefixes=prefixes)
    except SyntaxError as exc:
        raise BadRequest(f"the query does not parse: {exc.msg or exc}") from None
    except (ValueError, OSError):
        pass


def evaluate(
    query: str, fetched: Documents, prefixes: dict[str, str], provenance: bool, deadline: float
) -> Outcome:
    """The query over what was fetched (run in a worker thread: it may take a while)."""
    store, about = _load(fetched, provenance)
    try:
        result = store.query(query, prefixes=prefixes, use_default_graph_as_union=True)
    except SyntaxError as exc:
        raise BadRequest(f"the query does not parse: {exc.msg or exc}") from None
    except (ValueError, OSError) as exc:
        raise BadRequest(f"the query cannot run: {exc}") from None
    if isinstance(result, ox.QueryBoolean):
        return Outcome("ask", [], [], bool(result), [], {})
    if isinstance(result, ox.QueryTriples):
        return Outcome("graph", [], [], None, list(result), {})
    return _select(result, about if provenance else None, deadline)


def _load(fetched: Documents, provenance: bool) -> tuple[ox.Store, dict[str, set[str]]]:
    """One named graph per document; with ``provenance``, which documents speak of each IRI."""
    store = ox.Store()
    about: dict[str, set[str]] = {}
    quads: list[ox.Quad] = []
    for doc, triples in fetched.items():
        graph = ox.NamedNode(doc)
        quads.extend(ox.Quad(t.subject, t.predicate, t.object, graph) for t in triples)
        if provenance:
            for t in triples:
                if isinstance(t.subject, ox.NamedNode):
                    about.setdefault(t.subject.value, set()).add(doc)
    store.bulk_extend(quads)
    return store, about


def _select(result: ox.QuerySolutions, about: dict[str, set[str]] | None, deadline: float) -> Outcome:
    variables = [v.value for v in result.variables]
    rows = []
    sources: list[list[str]] | None = [] if about is not None else None
    for solution in result:
        row = {v: solution[v] for v in variables if solution[v] is not None}
        rows.append(row)
        if sources is not None and about is not None:
            sources.append(_behind(row, about))
        if len(rows) % 512 == 0 and time.monotonic() > deadline + 5:
            raise GatewayError("the query took too long to evaluate")
    return Outcome("select", variables, rows, None, [], {}, sources)


def _behind(row: dict[str, Any], about: dict[str, set[str]]) -> list[str]:
    docs: set[str] = set()
    for term in row.values():
        if isinstance(term, ox.NamedNode):
            docs |= about.get(term.value, set())
    return sorted(docs)


def _document(iri: str) -> str:
    return iri.split("#", 1)[0]


def _owner_of(doc: str, owners: list[Owner]) -> Owner | None:
    for owner in owners:  # longest namespace first
        if doc.startswith(owner.namespace):
            return owner
    return None
