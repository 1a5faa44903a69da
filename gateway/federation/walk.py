"""Link traversal: follow live links across nodes, evaluate in memory, report honestly.

1. Start IRIs (given, or the ones the query names) are dereferenced.
2. From every fetched document, links are followed whose predicate the query mentions
   (or every link, depth-bounded, in ``follow="all"``); collection pages are always
   followed through ``hydra:member`` and ``hydra:next``.
3. An IRI is fetched only from the node whose namespace owns it according to the
   registry; an IRI no active party owns is never fetched (no request to arbitrary
   hosts). The asking node's own namespace is read locally through its own policy.
4. Each round fetches the new IRIs of every node in parallel: in one ``POST /resources``
   per node where it offers it, otherwise by GET with a per-node concurrency limit; the
   HTTP client reuses connections and tokens. Loops end because no IRI is fetched twice.
5. Budgets (documents, depth, total time, per-node time) bound the walk; whatever cut
   it short, failed or was withheld is in the report, and ``complete`` says whether the
   answer could be missing anything.
6. The query runs over an in-memory pyoxigraph store with one named graph per document
   (for per-row provenance); it is dropped when the query ends: nothing is kept.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pyoxigraph as ox

from gateway.errors import BadRequest, GatewayError, HttpError
from gateway.federation.sparqltext import mentioned_iris
from gateway.identity.client import TokenClient
from gateway.identity.parties import Party

__all__ = ["Budget", "Federation", "Outcome", "Owner", "Read"]

_HYDRA = "http://www.w3.org/ns/hydra/core#"
_STRUCTURAL = {_HYDRA + "member", _HYDRA + "next"}  # a collection's members, and its next page
_BATCH_SIZE = 200


@dataclass(frozen=True, slots=True)
class Budget:
    max_documents: int = 2000
    max_depth: int = 4
    timeout: float = 10.0
    node_timeout: float = 5.0
    concurrency: int = 4
    follow: str = "predicates"  # or "all"


@dataclass(frozen=True, slots=True)
class Owner:
    """The party that owns a namespace, and where it answers in this deployment."""

    party_id: str
    namespace: str
    endpoint: str


@dataclass
class _NodeReport:
    party_id: str
    endpoint: str
    documents: int = 0
    requests: int = 0
    seconds: float = 0.0
    withheld: int = 0
    read_at: float | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    batch: bool = False
    skipped: int = 0  # documents not asked for because the node had failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "documents": self.documents,
            "requests": self.requests,
            "time_ms": round(self.seconds * 1000, 1),
            "withheld_fields": self.withheld,
            "read_at": _iso(self.read_at) if self.read_at else None,
            "batch": self.batch,
            "failures": self.failures,
            "skipped_documents": self.skipped,
        }


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
    read failed; ``withheld`` is what the owner said it withheld."""

    iri: str
    owner: Owner | None
    triples: list[ox.Triple]
    status: str
    withheld: int = 0
    seconds: float = 0.0


LocalRead = Callable[[list[str]], Awaitable[dict[str, tuple[list[ox.Triple], int]]]]
Progress = Callable[[dict[str, Any]], None]


class Federation:
    """The asking node's query engine; one instance per node, one walk per query."""

    def __init__(
        self,
        me: str,
        namespace: str,
        tokens: TokenClient,
        parties: Callable[[], Awaitable[list[Party]]],
        local: LocalRead,
        prefixes: dict[str, str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.me, self.namespace = me, namespace
        self.tokens = tokens
        self.parties = parties
        self.local = local
        self.prefixes = prefixes
        self.clock = clock
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
        began = time.monotonic()
        deadline = began + budget.timeout
        mentioned = mentioned_iris(query, self.prefixes)
        try:
            ox.Store().query(query, prefixes=self.prefixes)  # parse check before any request
        except SyntaxError as exc:
            raise BadRequest(f"the query does not parse: {exc.msg or exc}") from None
        except (ValueError, OSError):
            pass
        owners = await self.owners()
        seeds = list(start) or sorted(mentioned)
        follow_all = budget.follow == "all"
        reports: dict[str, _NodeReport] = {}
        unregistered: set[str] = set()
        fetched: dict[str, list[ox.Triple]] = {}
        queued: set[str] = set()
        cut: str | None = None
        frontier: list[str] = []
        for iri in seeds:
            doc = _document(iri)
            if doc not in queued:
                queued.add(doc)
                frontier.append(doc)
        depth = 0
        while frontier:
            if time.monotonic() > deadline:
                cut = "timeout"
                break
            room = budget.max_documents - len(fetched)
            if room <= 0:
                cut = "max_documents"
                break
            if len(frontier) > room:
                frontier, cut = frontier[:room], "max_documents"
            by_owner: dict[Owner | None, list[str]] = {}
            for doc in frontier:
                owner = None if doc.startswith(self.namespace) else _owner_of(doc, owners)
                if owner is None and not doc.startswith(self.namespace):
                    unregistered.add(doc)
                    continue
                by_owner.setdefault(owner, []).append(doc)
            remaining = max(deadline - time.monotonic(), 0.01)
            jobs = [
                self._fetch_from(owner, docs, budget, reports, remaining) for owner, docs in by_owner.items()
            ]
            for result in await asyncio.gather(*jobs):
                fetched.update(result)
            if progress:
                progress({"depth": depth, "documents": len(fetched), "nodes": len(reports)})
            if cut is not None:
                break
            depth += 1
            if depth > budget.max_depth:
                if any(_links(fetched[d], mentioned, follow_all) - queued for d in frontier if d in fetched):
                    cut = "max_depth"
                break
            new_frontier: list[str] = []
            for doc in frontier:
                for link in _links(fetched.get(doc, []), mentioned, follow_all):
                    target = _document(link)
                    if target not in queued:
                        queued.add(target)
                        new_frontier.append(target)
            frontier = new_frontier
        outcome = self._evaluate(query, fetched, provenance, deadline)
        failures = sum(len(r.failures) for r in reports.values())
        outcome.report = {
            "complete": cut is None and failures == 0,
            "cut_short": cut,
            "depth": depth,
            "documents": len(fetched),
            "requests": sum(r.requests for r in reports.values()),
            "elapsed_ms": round((time.monotonic() - began) * 1000, 1),
            "nodes": {p: r.as_dict() for p, r in sorted(reports.items())},
            "not_fetched_unregistered": sorted(unregistered)[:20],
            "not_fetched_unregistered_count": len(unregistered),
        }
        return outcome

    async def read(self, iri: str, within: float = 5.0) -> Read:
        """The document of ``iri`` from the node that owns it (for the workbench's pages);
        nothing is kept."""
        doc = _document(iri)
        owner = _owner_of(doc, await self.owners())
        if owner is None:
            return Read(doc, None, [], "unregistered")
        report = _NodeReport(owner.party_id, owner.endpoint)
        started = time.monotonic()
        try:
            triples = await asyncio.wait_for(self._get(owner, doc, report), within)
        except TimeoutError:
            return Read(doc, owner, [], "timeout", seconds=time.monotonic() - started)
        if triples is None:
            status = report.failures[0]["reason"] if report.failures else "not found"
            return Read(doc, owner, [], status, seconds=time.monotonic() - started)
        return Read(doc, owner, triples, "ok", report.withheld, time.monotonic() - started)

    async def read_many(self, iris: Iterable[str], within: float = 5.0) -> dict[str, list[ox.Triple]]:
        """Many documents at once (a batch per owner where it offers one): those read."""
        owners = await self.owners()
        by_owner: dict[Owner, list[str]] = {}
        for doc in dict.fromkeys(_document(i) for i in iris):
            owner = _owner_of(doc, owners)
            if owner is not None:
                by_owner.setdefault(owner, []).append(doc)
        reports: dict[str, _NodeReport] = {}
        jobs = [self._fetch_from(o, docs, Budget(), reports, within) for o, docs in by_owner.items()]
        out: dict[str, list[ox.Triple]] = {}
        for got in await asyncio.gather(*jobs):
            out.update(got)
        return out

    # -- fetching ----------------------------------------------------------------------

    async def _fetch_from(
        self,
        owner: Owner | None,
        docs: list[str],
        budget: Budget,
        reports: dict[str, _NodeReport],
        remaining: float,
    ) -> dict[str, list[ox.Triple]]:
        if owner is None:  # this node's own namespace: read locally, through its own policy
            report = reports.setdefault(self.me, _NodeReport(self.me, "local"))
            started = time.monotonic()
            got = await self.local(docs)
            report.seconds += time.monotonic() - started
            report.read_at = self.clock()
            report.documents += len(got)
            report.withheld += sum(w for _, w in got.values())
            return {doc: triples for doc, (triples, _) in got.items()}
        report = reports.setdefault(owner.party_id, _NodeReport(owner.party_id, owner.endpoint))
        if any(f["reason"] in ("timeout", "down") for f in report.failures):
            report.skipped += len(docs)  # it failed earlier in this query: not asked again
            return {}
        started = time.monotonic()
        timeout = min(budget.node_timeout, remaining)
        try:
            return await asyncio.wait_for(self._fetch_node(owner, docs, budget, report), timeout)
        except TimeoutError:
            report.failures.append(
                {"reason": "timeout", "detail": f"no complete answer within {timeout:.1f} s"}
            )
            return {}
        finally:
            report.seconds += time.monotonic() - started
            report.read_at = self.clock()

    async def _fetch_node(
        self, owner: Owner, docs: list[str], budget: Budget, report: _NodeReport
    ) -> dict[str, list[ox.Triple]]:
        try:
            token = await self.tokens.token(owner.party_id, owner.endpoint)
        except HttpError as exc:
            report.failures.append({"reason": "no token", "detail": exc.detail})
            return {}
        out: dict[str, list[ox.Triple]] = {}
        batchable = [d for d in docs if "?" not in d and "/collections/" not in d]
        single = [d for d in docs if d not in set(batchable)]
        if batchable and await self._offers_batch(owner, token, report):
            report.batch = True
            for i in range(0, len(batchable), _BATCH_SIZE):
                out.update(await self._batch(owner, batchable[i : i + _BATCH_SIZE], report))
        else:
            single = docs
        limit = asyncio.Semaphore(budget.concurrency)

        async def one(doc: str) -> None:
            async with limit:
                triples = await self._get(owner, doc, report)
                if triples is not None:
                    out[doc] = triples

        await asyncio.gather(*(one(d) for d in single))
        report.documents += len(out)
        return out

    async def _request(
        self, owner: Owner, report: _NodeReport, method: str, path: str, **kwargs: Any
    ) -> httpx.Response | None:
        """One authenticated request; a refused token is renewed once."""
        for attempt in (1, 2):
            token = await self.tokens.token(owner.party_id, owner.endpoint)
            headers = {"authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
            report.requests += 1
            try:
                answer = await self.tokens.http.request(
                    method, owner.endpoint + path, headers=headers, **kwargs
                )
            except httpx.TimeoutException:
                report.failures.append({"reason": "timeout", "path": path})
                return None
            except httpx.HTTPError as exc:
                report.failures.append({"reason": "down", "path": path, "detail": type(exc).__name__})
                return None
            if answer.status_code == 401 and attempt == 1:
                self.tokens.forget(owner.party_id, owner.endpoint)
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "authorization"}
                continue
            return answer
        return None

    async def _offers_batch(self, owner: Owner, token: str, report: _NodeReport) -> bool:
        cached = self._batch_support.get(owner.endpoint)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        answer = await self._request(owner, report, "GET", "/capabilities")
        offers = False
        if answer is not None and answer.status_code == 200:
            offers = _capabilities_offer(answer, "/resources")
        self._batch_support[owner.endpoint] = (time.monotonic() + 60, offers)
        return offers

    async def _batch(self, owner: Owner, docs: list[str], report: _NodeReport) -> dict[str, list[ox.Triple]]:
        body = orjson.dumps({"resources": [{"iri": d} for d in docs]})
        answer = await self._request(
            owner, report, "POST", "/resources", content=body, headers={"content-type": "application/json"}
        )
        if answer is None:
            return {}
        if answer.status_code != 200:
            report.failures.append({"reason": _status_reason(answer.status_code), "path": "/resources"})
            return {}
        out: dict[str, list[ox.Triple]] = {}
        asked = set(docs)
        try:
            items = orjson.loads(answer.content)["resources"]
            for item in items:
                iri, status = item["iri"], item["status"]
                if not isinstance(iri, str) or iri not in asked or status not in (200, 304, 404):
                    raise ValueError(f"unexpected entry {iri!r}")
                if status == 200:
                    out[iri] = _parse(item["ntriples"].encode(), ox.RdfFormat.N_TRIPLES)
                    report.withheld += int(item.get("withheld", 0))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, SyntaxError, ValueError):
            report.failures.append({"reason": "malformed answer", "path": "/resources"})
            return {}
        return out

    async def _get(self, owner: Owner, doc: str, report: _NodeReport) -> list[ox.Triple] | None:
        path = "/" + doc[len(owner.namespace) :]
        answer = await self._request(owner, report, "GET", path, headers={"accept": "application/n-triples"})
        if answer is None:
            return None
        if answer.status_code == 404:
            return None  # absent or not visible: the same to us
        if answer.status_code != 200:
            report.failures.append({"reason": _status_reason(answer.status_code), "path": path})
            return None
        report.withheld += int(answer.headers.get("dsgo-withheld-fields", "0") or 0)
        try:
            return _parse(answer.content, ox.RdfFormat.N_TRIPLES)
        except (SyntaxError, ValueError):
            report.failures.append({"reason": "malformed RDF", "path": path})
            return None

    # -- evaluating ----------------------------------------------------------------------

    def _evaluate(
        self, query: str, fetched: dict[str, list[ox.Triple]], provenance: bool, deadline: float
    ) -> Outcome:
        store = ox.Store()
        about: dict[str, set[str]] = {}
        quads = []
        for doc, triples in fetched.items():
            graph = ox.NamedNode(doc)
            for t in triples:
                quads.append(ox.Quad(t.subject, t.predicate, t.object, graph))
                if provenance and isinstance(t.subject, ox.NamedNode):
                    about.setdefault(t.subject.value, set()).add(doc)
        store.bulk_extend(quads)
        try:
            result = store.query(query, prefixes=self.prefixes, use_default_graph_as_union=True)
        except SyntaxError as exc:
            raise BadRequest(f"the query does not parse: {exc.msg or exc}") from None
        except (ValueError, OSError) as exc:
            raise BadRequest(f"the query cannot run: {exc}") from None
        if isinstance(result, ox.QueryBoolean):
            return Outcome("ask", [], [], bool(result), [], {})
        if isinstance(result, ox.QueryTriples):
            return Outcome("graph", [], [], None, list(result), {})
        variables = [v.value for v in result.variables]
        rows = []
        sources: list[list[str]] | None = [] if provenance else None
        for solution in result:
            row = {v: solution[v] for v in variables if solution[v] is not None}
            rows.append(row)
            if sources is not None:
                docs = set()
                for term in row.values():
                    if isinstance(term, ox.NamedNode):
                        docs |= about.get(term.value, set())
                sources.append(sorted(docs))
            if len(rows) % 512 == 0 and time.monotonic() > deadline + 5:
                raise GatewayError("the query took too long to evaluate")
        return Outcome("select", variables, rows, None, [], {}, sources)


def _document(iri: str) -> str:
    return iri.split("#", 1)[0]


def _owner_of(doc: str, owners: list[Owner]) -> Owner | None:
    for owner in owners:  # longest namespace first
        if doc.startswith(owner.namespace):
            return owner
    return None


def _links(triples: list[ox.Triple], mentioned: set[str], follow_all: bool) -> set[str]:
    out = set()
    for t in triples:
        p = t.predicate.value
        if isinstance(t.object, ox.NamedNode) and (follow_all or p in mentioned or p in _STRUCTURAL):
            out.add(t.object.value)
    return out


def _parse(data: bytes, fmt: ox.RdfFormat) -> list[ox.Triple]:
    return [q.triple for q in ox.parse(data, fmt)]


def _status_reason(status: int) -> str:
    return {401: "401 unauthorized", 403: "403 forbidden"}.get(status, f"HTTP {status}")


def _capabilities_offer(answer: httpx.Response, url: str) -> bool:
    """Does a node's capabilities answer list ``url`` (relative, or absolute as iSHARE
    writes it)? Read without verifying the token's signature: it only decides how to ask,
    never what to believe or send."""
    try:
        body = answer.json()
        token = body.get("capabilities_token")
        info = body if token is None else orjson.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    except (ValueError, TypeError, IndexError, AttributeError):
        return False
    return f'{url}"' in orjson.dumps(info).decode()


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
