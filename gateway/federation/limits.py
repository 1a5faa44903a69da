"""How much a federated query may read, enforced while the bytes arrive.

A peer's answer is read in chunks from the network (``httpx`` streaming), counted, and
parsed in a worker thread a megabyte at a time, so neither a huge nor an endless body
is ever held whole, and the event loop keeps answering the node's other routes while
it parses. Three scopes are counted, each in bytes and in triples:

- one **document** (a GET answer, or one entry of a ``POST /resources`` answer),
- one **batch** (a whole ``POST /resources`` answer),
- the whole **query** (every byte and triple read from every peer).

The first limit reached ends that read with ``LimitExceeded``; the walk then cuts the
peer off (or, for the query's limit, stops) and says so in the report. N-Triples is
line based (N-Triples §2: no raw line break inside a term), so complete lines parse on
their own and blank node labels keep their names across chunks.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import orjson
import pyoxigraph as ox

__all__ = [
    "Allowance",
    "Counter",
    "LimitExceeded",
    "Limits",
    "loads",
    "parse_ntriples",
    "read_body",
    "read_ntriples",
]

_PARSE_CHUNK = 1 << 20  # parse once this much of complete lines has arrived


@dataclass(frozen=True, slots=True)
class Limits:
    """Bytes and triples one document, one batch answer and one query may bring in."""

    document_bytes: int = 16 << 20
    document_triples: int = 100_000
    batch_bytes: int = 32 << 20
    batch_triples: int = 200_000
    query_bytes: int = 64 << 20
    query_triples: int = 500_000


class LimitExceeded(Exception):
    """A read went past a limit; ``scope`` is ``document``, ``batch`` or ``query``."""

    def __init__(self, scope: str, unit: str, limit: int) -> None:
        self.scope, self.unit, self.limit = scope, unit, limit
        shown = f"{limit / (1 << 20):g} MB" if unit == "bytes" else f"{limit} triples"
        super().__init__(f"more than {shown} in one {scope} (federation.max_{scope}_{unit})")

    @property
    def detail(self) -> str:
        return str(self)


@dataclass(slots=True)
class Counter:
    """What one scope has taken so far, against its two limits."""

    scope: str
    max_bytes: int
    max_triples: int
    bytes: int = 0
    triples: int = 0
    #: the unit ("bytes" or "triples") whose limit was passed, once it was
    exceeded: str | None = None

    def add(self, nbytes: int = 0, ntriples: int = 0) -> None:
        self.bytes += nbytes
        self.triples += ntriples
        if self.bytes > self.max_bytes:
            self.exceeded = "bytes"
            raise LimitExceeded(self.scope, "bytes", self.max_bytes)
        if self.triples > self.max_triples:
            self.exceeded = "triples"
            raise LimitExceeded(self.scope, "triples", self.max_triples)


class Allowance:
    """Counters that every read of one scope adds to at once (document, batch, query)."""

    def __init__(self, *counters: Counter) -> None:
        self.counters = counters

    def add(self, nbytes: int = 0, ntriples: int = 0) -> None:
        for counter in self.counters:
            counter.add(nbytes, ntriples)

    def with_(self, counter: Counter) -> Allowance:
        return Allowance(counter, *self.counters)


def parse_ntriples(data: bytes) -> list[ox.Triple]:
    """N-Triples to triples; ``SyntaxError``/``ValueError`` if malformed (run off the loop)."""
    return [q.triple for q in ox.parse(data, ox.RdfFormat.N_TRIPLES)]


async def read_ntriples(answer: httpx.Response, allowance: Allowance) -> list[ox.Triple]:
    """A streamed N-Triples body, parsed as it arrives, within ``allowance``."""
    triples: list[ox.Triple] = []
    pending = bytearray()
    async for chunk in answer.aiter_bytes():
        allowance.add(len(chunk))
        pending += chunk
        if len(pending) >= _PARSE_CHUNK:
            cut = pending.rfind(b"\n") + 1
            if cut:
                triples += await _parse_counted(bytes(pending[:cut]), allowance)
                del pending[:cut]
    if pending.strip():
        triples += await _parse_counted(bytes(pending), allowance)
    return triples


#: a piece this small parses on the event loop (tens of microseconds, less than the hop to
#: a worker thread costs); larger ones in a thread, so that the loop keeps answering
_INLINE_PARSE = 64 * 1024


async def _parse_counted(data: bytes, allowance: Allowance) -> list[ox.Triple]:
    small = len(data) <= _INLINE_PARSE
    got = parse_ntriples(data) if small else await asyncio.to_thread(parse_ntriples, data)
    allowance.add(ntriples=len(got))
    return got


async def read_body(answer: httpx.Response, allowance: Allowance) -> bytes:
    """A streamed body kept whole (a batch's JSON), but never past ``allowance``."""
    body = bytearray()
    async for chunk in answer.aiter_bytes():
        allowance.add(len(chunk))
        body += chunk
    return bytes(body)


async def loads(body: bytes) -> object:
    """JSON off the event loop (a batch answer may be megabytes)."""
    return await asyncio.to_thread(orjson.loads, body)
