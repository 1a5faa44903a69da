"""A node's engines put together: store, sources, vocabulary and cached representations.

This is what the HTTP edge talks to; it knows nothing of HTTP itself. A
representation (bytes, media type, ETag) is rendered once per store generation and
served from memory until the data changes, so a read costs a dictionary lookup.

A node whose source is a SPARQL store (``type = "sparql"``) reads it live through
``RemoteStore`` instead of its own store; that store's generation is a time bucket, so
its representations live at most ``cache_ttl`` seconds (``gateway.store.remote``).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import unquote

import pyoxigraph as ox

from connectors import KINDS, SourceEnv
from gateway.access import Access
from gateway.audit import AuditLog
from gateway.config import NodeSettings
from gateway.formats import Format, Page
from gateway.policy.model import Grant
from gateway.policy.notice import Notice
from gateway.store.local import Store
from gateway.store.remote import RemoteSources, RemoteStore
from gateway.store.sources import Sources
from gateway.vocab import Vocab, load_vocab

__all__ = ["Built", "Node", "Representation", "etag_of", "ordered"]


@dataclass(frozen=True, slots=True)
class Built:
    """What a read path hands to a renderer: the visible triples and what was decided."""

    triples: Sequence[ox.Triple]
    page: Page
    resources: tuple[str, ...] = ()
    released: frozenset[str] = frozenset()
    withheld: int = 0  # the real count, for the owner's audit log
    rules: tuple[str, ...] = ()
    purposes: tuple[str, ...] = ()
    #: what the caller is told of withheld fields (``gateway.policy.notice``: view and policy
    #: only), or None when the policy withholds nothing of resources like it from it
    told: Notice | None = None


@dataclass(frozen=True, slots=True, weakref_slot=True, eq=False)  # identity: cache keys
class Representation:
    body: bytes
    content_type: str
    etag: str
    links: tuple[tuple[str, str], ...] = ()
    #: for the audit log: what was released and how many fields were really withheld
    resources: tuple[str, ...] = ()
    released: tuple[str, ...] = ()  # sorted, ready for the audit log
    withheld: int = 0
    rules: tuple[str, ...] = ()
    purpose: str = ""  # the granting rules' purposes, "; "-joined once, not on every read
    #: for the caller's ``dsgo-withheld-fields`` and ``dsgo-withheld`` headers: from its
    #: view and the policy only
    told: Notice | None = None


def etag_of(body: bytes) -> str:
    """A strong validator: equal bytes, equal tag (RFC 9110 §8.8.3)."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


@dataclass
class _Cache:
    """Representations of the current store generation, bounded in entries and bytes.
    Generations only grow; a remote store's reads build in worker threads, hence the lock."""

    max_entries: int = 20_000
    max_bytes: int = 64 << 20
    generation: int = -1
    size: int = 0
    entries: dict[tuple[object, ...], Representation] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, generation: int, key: tuple[object, ...]) -> Representation | None:
        with self.lock:
            if generation != self.generation:
                if generation > self.generation:
                    self.entries.clear()
                    self.generation, self.size = generation, 0
                return None
            return self.entries.get(key)

    def put(self, generation: int, key: tuple[object, ...], rep: Representation) -> None:
        """Keep ``rep``, read at ``generation``, unless the data has moved on since."""
        with self.lock:
            if generation != self.generation:
                return
            if len(self.entries) >= self.max_entries or self.size + len(rep.body) > self.max_bytes:
                self.entries.clear()
                self.size = 0
            self.entries[key] = rep
            self.size += len(rep.body)


class Node:
    def __init__(
        self, settings: NodeSettings, vocab: Vocab | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.vocab = vocab or load_vocab()
        live = next((s for s in settings.sources if KINDS[s.kind].live), None)
        #: the SPARQL store read live in place of the node's own (config: its only source)
        self.remote: RemoteStore | None = None
        self.store: Store | RemoteStore
        if live is None:
            self.store = Store(settings.store_path)
        else:
            self.store = self.remote = RemoteStore.from_settings(live, clock)
        try:
            # Access reads describe/members/objects/subjects/generation, which RemoteStore
            # offers alike (named_subjects, for SPARQL views, it refuses)
            store = cast(Store, self.store)
            self.access = Access(
                store, self.vocab, settings.policies_dir, open_node=settings.open, clock=clock
            )
        except BaseException:
            self.store.close()
            raise
        env = SourceEnv(
            base_iri=settings.base_iri, contexts=self.vocab.contexts, prefixes=self.vocab.prefixes
        )
        self.sources: Sources | RemoteSources
        if live is None or self.remote is None:
            self.sources = Sources(settings.sources, store, env)
        else:
            self.sources = RemoteSources(live, self.remote)
        self._cache = _Cache()
        #: where this node's reads are recorded: set by the app that serves it, else none
        self.audit: AuditLog | None = None

    @property
    def namespace(self) -> str:
        return self.settings.base_iri

    def page(self, subject: str, title: str = "", links: tuple[tuple[str, str], ...] = ()) -> Page:
        return Page(self.vocab, self.namespace, subject, title, links)

    def represent(
        self,
        key: tuple[object, ...],
        fmt: Format,
        build: Callable[[], Built | None],
    ) -> Representation | None:
        """The cached representation for ``key`` in ``fmt``; ``build`` decides what the
        caller sees (``None``: nothing). ``key`` must include the caller's grant."""
        generation = self.store.generation
        full = (*key, fmt.name)
        rep = self._cache.get(generation, full)
        if rep is None:
            built = build()
            if built is None:
                return None
            body = fmt.render(ordered(built.triples), built.page)
            rep = Representation(
                body,
                fmt.content_type,
                etag_of(body),
                built.page.links,
                built.resources,
                tuple(sorted(built.released)),
                built.withheld,
                built.rules,
                "; ".join(built.purposes),
                built.told,
            )
            self._cache.put(generation, full, rep)
        return rep

    def cached(self, key: tuple[object, ...], fmt: Format) -> Representation | None:
        """What ``represent`` would answer from its cache alone; None if not built yet."""
        return self._cache.get(self.store.generation, (*key, fmt.name))

    def own_documents(self, docs: list[str]) -> dict[str, tuple[list[ox.Triple], int]]:
        """The node's own documents as its own party reads them (everything), for a
        federated query asked here: each resource's triples, and of a collection of its own
        (``{namespace}collections/{class}``) all members. Unknown documents are left out."""
        collections = self.namespace + "collections/"
        out: dict[str, tuple[list[ox.Triple], int]] = {}
        for doc in docs:
            if doc.startswith(collections):
                class_iri = self.vocab.expand(unquote(doc[len(collections) :].partition("?")[0]))
                if class_iri is not None:
                    members = self.access.members(_OWNER, class_iri, self.namespace)
                    coll = ox.NamedNode(doc)
                    out[doc] = ([ox.Triple(coll, _MEMBER, ox.NamedNode(m)) for m in members], 0)
                continue
            decision = self.access.resource(_OWNER, doc)
            if decision is not None:
                out[doc] = (decision.triples, decision.withheld)
        return out

    async def represent_async(
        self,
        key: tuple[object, ...],
        fmt: Format,
        build: Callable[[], Built | None],
    ) -> Representation | None:
        """``represent`` for the HTTP edge: a remote store's reads run in a worker thread
        so the event loop never waits on the network; cache hits stay on the loop."""
        if self.remote is None:
            return self.represent(key, fmt, build)
        hit = self._cache.get(self.store.generation, (*key, fmt.name))
        return hit or await asyncio.to_thread(self.represent, key, fmt, build)

    def close(self) -> None:
        self.store.close()


#: a node reads its own data in full
_OWNER = Grant.of((), "owner", everything=True)
_MEMBER = ox.NamedNode("http://www.w3.org/ns/hydra/core#member")


def ordered(triples: Sequence[ox.Triple]) -> list[ox.Triple]:
    """The triples in a canonical order: the first triple's subject (the resource, the
    collection, the dataset) first, then the other subjects, each by predicate and
    object. Stable bytes, so stable ETags, and readable Turtle; the order depends only
    on the set of triples, never on how the store happened to hold them, so data the
    caller may not see cannot move what it sees (non-interference, DESIGN.md)."""
    if not triples:
        return []
    main = triples[0].subject
    return sorted(
        triples, key=lambda t: (t.subject != main, str(t.subject), t.predicate.value, str(t.object))
    )
