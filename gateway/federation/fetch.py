"""One walk's reads from one peer: authenticated, streamed, bounded, reported.

A ``Peer`` asks the node that owns some documents for them: in ``POST /resources``
batches where the node offers that (its ``/capabilities`` say so), else by GET with a
per-node concurrency limit. Every answer is streamed and counted against the limits of
``gateway.federation.limits``; a peer that goes past one, times out or is down is cut
off for the rest of the query, and what it had already answered in full is kept.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pyoxigraph as ox

from gateway.errors import HttpError
from gateway.federation.limits import (
    Allowance,
    Counter,
    LimitExceeded,
    Limits,
    loads,
    parse_ntriples,
    read_body,
    read_ntriples,
)
from gateway.identity.client import TokenClient
from gateway.policy.notice import Withheld

__all__ = ["FAILED_SOURCES_HEADER", "NodeReport", "Owner", "Peer"]

#: a node serving a source that failed to read names it here: its answers may be incomplete
FAILED_SOURCES_HEADER = "dsgo-failed-sources"
_WITHHELD_HEADER, _WITHHELD_FIELDS_HEADER = "dsgo-withheld-fields", "dsgo-withheld"
_BATCH_SIZE = 200
_CUT_OFF = frozenset({"timeout", "down", "limit"})  # not asked again in this query
_CAPABILITIES_BYTES = 1 << 20

Documents = dict[str, list[ox.Triple]]


@dataclass(frozen=True, slots=True)
class Owner:
    """The party that owns a namespace, and where it answers in this deployment."""

    party_id: str
    namespace: str
    endpoint: str


@dataclass
class NodeReport:
    party_id: str
    endpoint: str
    documents: int = 0
    requests: int = 0
    seconds: float = 0.0
    withheld: int = 0
    told: Withheld = field(default_factory=Withheld)  # which fields the owner said it withheld
    read_at: float | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    batch: bool = False
    skipped: int = 0  # documents not asked for because the node had been cut off
    failed_sources: set[str] = field(default_factory=set)

    def fail(self, reason: str, path: str | None = None, detail: str | None = None) -> None:
        entry = {"reason": reason}
        if path is not None:
            entry["path"] = path
        if detail is not None:
            entry["detail"] = detail
        self.failures.append(entry)

    def cut_off(self) -> bool:
        return any(f["reason"] in _CUT_OFF for f in self.failures)

    def add_withheld(self, value: object, fields: object = None) -> None:
        """The owner's count of fields it withheld and which (headers or a batch entry's
        members, ``gateway.policy.notice``'s forms)."""
        with contextlib.suppress(ValueError):
            self.withheld += max(int(str(value or 0)), 0)
        if isinstance(fields, str):
            self.told |= Withheld.from_header(fields)

    def note_sources(self, headers: httpx.Headers) -> None:
        named = headers.get(FAILED_SOURCES_HEADER, "")
        self.failed_sources.update(s.strip() for s in named.split(",") if s.strip())

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "documents": self.documents,
            "requests": self.requests,
            "time_ms": round(self.seconds * 1000, 1),
            "withheld_fields": self.withheld,
            "withheld_field_names": sorted(self.told.fields),
            "withholds_unnamed_fields": self.told.partial,
            "read_at": _iso(self.read_at) if self.read_at else None,
            "batch": self.batch,
            "failures": self.failures,
            "skipped_documents": self.skipped,
            "failed_sources": sorted(self.failed_sources),
        }


class Peer:
    """The reads of one walk from one node, within the walk's limits."""

    def __init__(
        self,
        tokens: TokenClient,
        owner: Owner,
        report: NodeReport,
        limits: Limits,
        query: Allowance,
        concurrency: int,
        batch_support: dict[str, tuple[float, bool]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tokens, self.owner, self.report = tokens, owner, report
        self.limits, self.query, self.concurrency = limits, query, concurrency
        self.batch_support, self.clock = batch_support, clock

    async def fetch(self, docs: list[str], within: float, batch: bool = True) -> Documents:
        """The documents this node answered in full within ``within`` seconds; without
        ``batch``, each by GET (a batch answers resources only, not ``/.well-known/void``)."""
        if self.report.cut_off():
            self.report.skipped += len(docs)
            return {}
        out: Documents = {}
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._fetch(docs, out, batch), within)
        except TimeoutError:
            self.report.fail("timeout", detail=f"no complete answer within {within:.1f} s")
        finally:
            self.report.seconds += time.monotonic() - started
            self.report.read_at = self.clock()
        self.report.documents += len(out)
        return dict(out)

    async def _fetch(self, docs: list[str], out: Documents, batch: bool) -> None:
        try:
            await self.tokens.token(self.owner.party_id, self.owner.endpoint)
        except HttpError as exc:
            self.report.fail("no token", detail=exc.detail)
            return
        batchable = [d for d in docs if "?" not in d and "/collections/" not in d]
        single = docs
        if batch and batchable and await self._offers_batch():
            self.report.batch = True
            asked = set(batchable)
            single = [d for d in docs if d not in asked]
            await self._batches(batchable, out)
        await self._singles(single, out)

    async def _batches(self, docs: list[str], out: Documents) -> None:
        for i in range(0, len(docs), _BATCH_SIZE):
            if not self.report.cut_off():
                await self._batch(docs[i : i + _BATCH_SIZE], out)

    async def _singles(self, docs: list[str], out: Documents) -> None:
        limit = asyncio.Semaphore(self.concurrency)

        async def one(doc: str) -> None:
            async with limit:
                if not self.report.cut_off():
                    await self._get(doc, out)

        await asyncio.gather(*(one(d) for d in docs))

    async def _exchange(
        self, method: str, path: str, read: Callable[[httpx.Response], Awaitable[None]], **kwargs: Any
    ) -> None:
        """One authenticated request whose answer ``read`` takes while it streams; a
        refused token (401) is renewed once. Failures go to the report."""
        extra = kwargs.pop("headers", {})
        for attempt in (1, 2):
            token = await self.tokens.token(self.owner.party_id, self.owner.endpoint)
            headers = {"authorization": f"Bearer {token}", **extra}
            self.report.requests += 1
            try:
                async with self.tokens.http.stream(
                    method, self.owner.endpoint + path, headers=headers, **kwargs
                ) as answer:
                    if answer.status_code == 401 and attempt == 1:
                        self.tokens.forget(self.owner.party_id, self.owner.endpoint)
                        continue
                    await read(answer)
                    return
            except httpx.TimeoutException:
                self.report.fail("timeout", path)
            except httpx.HTTPError as exc:
                self.report.fail("down", path, type(exc).__name__)
            except LimitExceeded as exc:
                self.report.fail("limit", path, exc.detail)
            return

    async def _offers_batch(self) -> bool:
        cached = self.batch_support.get(self.owner.endpoint)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        offers: list[bool] = [False]

        async def read(answer: httpx.Response) -> None:
            if answer.status_code == 200:
                body = await read_body(answer, self.query.with_(Counter("document", _CAPABILITIES_BYTES, 0)))
                offers[0] = _capabilities_offer(body, "/resources")

        await self._exchange("GET", "/capabilities", read)
        self.batch_support[self.owner.endpoint] = (time.monotonic() + 60, offers[0])
        return offers[0]

    async def _get(self, doc: str, out: Documents) -> None:
        path = "/" + doc[len(self.owner.namespace) :]

        async def read(answer: httpx.Response) -> None:
            if answer.status_code == 404:
                return  # absent or not visible: the same to us
            if answer.status_code != 200:
                self.report.fail(_status_reason(answer.status_code), path)
                return
            self.report.note_sources(answer.headers)
            document = Counter("document", self.limits.document_bytes, self.limits.document_triples)
            try:
                out[doc] = await read_ntriples(answer, self.query.with_(document))
            except (SyntaxError, ValueError):
                self.report.fail("malformed RDF", path)
                return
            headers = answer.headers
            self.report.add_withheld(headers.get(_WITHHELD_HEADER), headers.get(_WITHHELD_FIELDS_HEADER))

        await self._exchange("GET", path, read, headers={"accept": "application/n-triples"})

    async def _batch(self, docs: list[str], out: Documents) -> None:
        request = orjson.dumps({"resources": [{"iri": d} for d in docs]})

        async def read(answer: httpx.Response) -> None:
            if answer.status_code != 200:
                self.report.fail(_status_reason(answer.status_code), "/resources")
                return
            self.report.note_sources(answer.headers)
            batch = self.query.with_(Counter("batch", self.limits.batch_bytes, self.limits.batch_triples))
            got = await self._entries(await read_body(answer, batch), set(docs), batch)
            if got is None:
                self.report.fail("malformed answer", "/resources")
                return
            out.update(got)

        headers = {"content-type": "application/json"}
        await self._exchange("POST", "/resources", read, content=request, headers=headers)

    async def _entries(self, body: bytes, asked: set[str], batch: Allowance) -> Documents | None:
        """A batch answer's documents; None if it is not what ``POST /resources`` answers."""
        out: Documents = {}
        try:
            answer = await loads(body)
            if not isinstance(answer, dict):
                return None
            for item in answer["resources"]:
                iri, status = item["iri"], item["status"]
                if not isinstance(iri, str) or iri not in asked or status not in (200, 304, 404):
                    return None
                if status == 200:
                    out[iri] = await self._entry(item["ntriples"].encode(), batch)
                    self.report.add_withheld(item.get("withheld"), item.get("withheld_fields"))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, SyntaxError, ValueError):
            return None
        return out

    async def _entry(self, data: bytes, batch: Allowance) -> list[ox.Triple]:
        document = Counter("document", self.limits.document_bytes, self.limits.document_triples)
        document.add(len(data))  # the batch and the query counted these bytes as they came
        triples = await asyncio.to_thread(parse_ntriples, data)
        batch.with_(document).add(ntriples=len(triples))
        return triples


def _status_reason(status: int) -> str:
    return {401: "401 unauthorized", 403: "403 forbidden"}.get(status, f"HTTP {status}")


def _capabilities_offer(body: bytes, url: str) -> bool:
    """Does a node's capabilities answer list ``url``? Read without verifying the token's
    signature: it only decides how to ask, never what to believe or send."""
    try:
        info = orjson.loads(body)
        token = info.get("capabilities_token")
        if token is not None:
            info = orjson.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    except (ValueError, TypeError, IndexError, AttributeError):
        return False
    return f'{url}"' in orjson.dumps(info).decode()  # relative, or absolute as iSHARE writes it


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
