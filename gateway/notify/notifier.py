"""A node's change notifications: from a changed source to a signed POST, nothing lost.

1. **Subscribe** (``subscribe``): the DSGO body is read (``subscription``), its webhook
   must lie under the subscriber's own endpoint as the registry lists it (a node posts
   only to the party that subscribed, never to an address a caller names), and the
   subscriber must be able to read every watched field on at least one resource of the
   topic now.
2. **Detect** (``changed``, called by ``Sources`` with a source's old and new triples
   before the new version is switched in; ``store_changed``, called by
   ``gateway.store.watch`` with the old and new descriptions of the resources another
   writer changed in a remote store, which already serves them): the resources whose description changed
   (``change.source_diff``), matched against every active subscription; the policy is
   evaluated for each subscriber on its view before and after (``change.visible_change``),
   and what it may see becomes one notification per change and subscription, numbered,
   signed (``gateway.identity.detached``) and stored in the outbox in one transaction.
3. **Send** (``run``): the first pending notification of each subscription is POSTed to
   the subscriber's registered endpoint; the policy is evaluated **again** first (when
   the subscriber's grant differs from the one the notification was made under, it is
   decided anew, and withdrawn if the subscriber may no longer read what it says).
   Failures are retried with exponential backoff; a subscription whose deliveries fail
   for ``inactive_after`` seconds turns ``inactive`` and says so. Every delivery, and
   every replay-feed read, is in the audit log with the fields it released.
4. **Replay** (``feed``): a subscriber catches up by position, in order, without gaps.

One process of a node sends (it holds ``OUTBOX.lock``); the others only write changes,
which they all find alike, and the stable notification ids make that idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import IO, Any

import httpx
import pyoxigraph as ox

from gateway.audit import AuditLog
from gateway.errors import GatewayError, SubscriptionRefused, WebhookOutsideEndpoint
from gateway.identity.detached import attach, sign_body
from gateway.identity.parties import Party
from gateway.identity.pki import Identity
from gateway.identity.token_endpoint import TrustSource
from gateway.node import Node
from gateway.notify.change import After, Changed, linked, source_diff, view_of, visible_change
from gateway.notify.message import body_of, notification_id
from gateway.notify.outbox import Draft, Outbox, Pending
from gateway.notify.subscription import Subscription, Topic, iso, parse_request
from gateway.policy.decide import Lookup
from gateway.policy.model import Caller, Grant
from gateway.store.local import RDF_TYPE
from gateway.store.remote import RemoteStore

__all__ = ["SIGNATURE_HEADER", "WEBHOOK_PATH", "Notifier", "Retry", "check_webhook"]

log = logging.getLogger("dsgo.notify")

#: where a node takes the notifications for its own party (``gateway.http.subscriptions``)
WEBHOOK_PATH = "/notifications"
#: the detached JWS over the body (the name Open Banking's signed messages use)
SIGNATURE_HEADER = "x-jws-signature"
_PAGE = 100
#: changes decided, signed and stored per transaction: the first are sent meanwhile; a
#: crash between two leaves the source unswitched, and reading it again skips (by their
#: stable ids) the notifications already stored, in the same order (changes sorted by IRI)
_CHUNK = 16
#: first-pending notifications tried at once (the outbound pool keeps 32 connections)
_BATCH = 32


@dataclass(frozen=True, slots=True)
class Retry:
    """Backoff: ``base`` seconds after the first failure, doubling up to ``longest``; after
    ``inactive_after`` seconds of failures the subscription turns inactive."""

    base: float = 2.0
    longest: float = 3600.0
    inactive_after: float = 3 * 86400.0

    def delay(self, attempts: int) -> float:
        return float(min(self.base * 2 ** min(attempts, 40), self.longest))


def check_webhook(url: str | None, party: Party | None) -> tuple[str, str]:
    """(the webhook URL, its path under the endpoint): only the subscriber's own endpoint
    as the registry lists it; without ``url``, that endpoint's ``/notifications``."""
    who = party.party_id if party else "you"
    if party is None or not party.endpoint:
        raise WebhookOutsideEndpoint(f"the registry lists no endpoint for {who}: there is nowhere to send to")
    base = party.endpoint.rstrip("/")
    if url is None:
        return base + WEBHOOK_PATH, WEBHOOK_PATH
    path = url[len(base) :] if url.startswith(base) else None
    if path is None or not re.fullmatch(r"(/[A-Za-z0-9._~!$&'()*+,;=:%-]*)*", path) or "/." in path:
        raise WebhookOutsideEndpoint(
            f"webhook_url {url!r} is not under {who}'s endpoint {base} as the registry lists it; "
            f"a node posts only to the subscriber's own node (leave it out for {base}{WEBHOOK_PATH})"
        )
    return url, path or "/"


class Notifier:
    def __init__(
        self,
        node: Node,
        identity: Identity,
        outbox: Outbox,
        registry: TrustSource,
        http: httpx.AsyncClient,
        *,
        audit: AuditLog | None = None,
        clock: Callable[[], float] = time.time,
        retry: Retry | None = None,
    ) -> None:
        self.node, self.identity, self.outbox, self.registry, self.http = (
            node,
            identity,
            outbox,
            registry,
            http,
        )
        self.audit, self.clock, self.retry = audit, clock, retry or Retry()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._grants: dict[tuple[str, tuple[str, ...]], Grant] = {}

    # -- subscribing --------------------------------------------------------------------

    async def subscribe(self, caller: Caller, body: bytes) -> Subscription:
        assert caller.party_id is not None
        me = self.node.settings.party_id
        now = self.clock()
        sub, webhook = parse_request(
            body, consumer=caller.party_id, provider=me, vocab=self.node.vocab, now=now
        )
        url, path = check_webhook(webhook, await self.registry.party(caller.party_id))
        sub = replace(sub, webhook_url=url, webhook_path=path)
        grant = self.node.access.grant(caller)
        await asyncio.to_thread(self._check_readable, grant, sub.topic)
        await asyncio.to_thread(self.outbox.add, sub, sorted(caller.roles))
        return sub

    def _check_readable(self, grant: Grant, topic: Topic) -> None:
        """Every watched field readable on at least one resource of the topic, now."""
        readable: set[str] = set()
        seen = False
        store, lookup = self.node.access.store, self.node.access.lookup
        for subject in self._candidates(topic):
            decision = view_of(grant, topic, subject, store.describe(subject), lookup)
            if decision is None:
                continue
            seen = True
            readable |= decision.released
            if topic.watched is None or topic.watched <= readable:
                return
        if not seen:
            raise SubscriptionRefused("there is no resource in this topic that you may read now")
        assert topic.watched is not None
        missing = self.node.vocab.curie(sorted(topic.watched - readable)[0])
        raise SubscriptionRefused(f"you may read {missing} on no resource of this topic now")

    def _candidates(self, topic: Topic) -> Iterator[str]:
        """The resources a topic may match: its IRIs when it names them exactly, else the
        members of its classes, else every resource of the node."""
        store, namespace = self.node.access.store, self.node.namespace
        iris = topic.raw.get("iris", [])
        if iris and not any("*" in i for i in iris):
            yield from iris
        elif topic.selector.classes:
            for cls in sorted(topic.selector.classes):
                yield from store.members(cls, namespace)
        elif isinstance(store, RemoteStore):  # it lists no subjects of its own
            yield from store.resources(namespace)
        else:
            yield from (n.value for n in store.named_subjects() if n.value.startswith(namespace))

    # -- changes ------------------------------------------------------------------------

    def changed(
        self, name: str, before: Sequence[ox.Triple], after: Sequence[ox.Triple], versions: tuple[str, str]
    ) -> int:
        """Source ``name`` is about to serve ``after`` in place of ``before``: store what
        each subscriber may see of it. Returns the number of new notifications."""
        store, lookup = self.node.access.store, self.node.access.lookup
        old = set(before)
        return self._changes(
            name,
            versions,
            lambda: source_diff(before, after, lambda iri: [t for t in store.describe(iri) if t not in old]),
            lookup,
            After(lookup, before, after),
        )

    def store_changed(
        self, name: str, before: Sequence[ox.Triple], after: Sequence[ox.Triple], versions: tuple[str, str]
    ) -> int:
        """The remote store already serves ``after`` (the descriptions of the resources
        another writer changed) where it served ``before`` (``gateway.store.watch``):
        the same as ``changed``, with the data before the change read as the store less
        what was added plus what was removed. Returns the number of new notifications."""
        lookup = self.node.access.lookup
        return self._changes(
            name, versions, lambda: source_diff(before, after), After(lookup, after, before), lookup
        )

    def _changes(
        self,
        name: str,
        versions: tuple[str, str],
        diff: Callable[[], list[Changed]],
        before: Lookup,
        after: Lookup,
    ) -> int:
        """Match the changed resources (``diff``) to the active subscriptions, decided on
        the data ``before`` and ``after`` the change, and store the notifications."""
        now = self.clock()
        subs = [(s, r) for s, r in self.outbox.active() if s.status(now)[0] == "active"]
        if not subs:
            return 0
        self._grants.clear()
        changes = self._with_linked(diff(), subs, (before, after))
        by_iri, others = _by_iri(subs)
        new = 0
        for start in range(0, len(changes), _CHUNK):
            drafts: list[Draft] = []
            events: list[tuple[str, str, str, str, float]] = []
            for change in changes[start : start + _CHUNK]:
                event = hashlib.sha256(
                    f"{name}\0{versions[0]}\0{versions[1]}\0{change.subject}".encode()
                ).hexdigest()[:32]
                found = [
                    self._draft(s, r, change, event, (before, after))
                    for s, r in (*by_iri.get(change.subject, ()), *others)
                    if _may_match(s.topic, change)
                ]
                mine = [d for d in found if d is not None]
                if mine:
                    events.append((event, change.subject, _nt(change.before), _nt(change.after), now))
                    drafts.extend(mine)
            if drafts:
                new += self.outbox.enqueue(events, drafts, self._render, now)
                self.wake()  # the first are sent while the rest are decided
        return new

    def _with_linked(
        self, changes: list[Changed], subs: Sequence[Subscribed], lookups: tuple[Lookup, Lookup]
    ) -> list[Changed]:
        """``changes`` and the resources whose view they may change through a link that a
        subscriber's policy conditions follow (``change.linked``); sorted by IRI."""
        paths = {
            c.via
            for consumer, roles in {(s.consumer_id, tuple(sorted(r))) for s, r in subs}
            for rule in self._grant(consumer, roles).rules
            for c in rule.where
            if c.via
        }
        if not paths or not changes:
            return changes
        store = self.node.access.store
        more = linked([c.subject for c in changes], paths, list(lookups))
        extra = []
        for iri in sorted(more):
            cbd = tuple(store.describe(iri))
            if cbd:
                extra.append(Changed(iri, cbd, cbd))
        return sorted([*changes, *extra], key=lambda c: c.subject)

    def _grant(self, consumer: str, roles: Sequence[str]) -> Grant:
        key = (consumer, tuple(sorted(roles)))
        grant = self._grants.get(key)
        if grant is None:
            grant = self._grants[key] = self.node.access.grant(Caller(consumer, frozenset(roles)))
        return grant

    def _draft(
        self,
        sub: Subscription,
        roles: Sequence[str],
        change: Changed,
        event: str,
        data: tuple[Lookup, Lookup],
    ) -> Draft | None:
        grant = self._grant(sub.consumer_id, roles)
        visible = visible_change(grant, sub.topic, change, *data)
        if visible is None or visible.kind not in sub.event_types:
            return None
        return Draft(
            notification_id(sub.id, event),
            sub.id,
            event,
            visible.kind,
            visible.fields,
            "|".join(grant.key),
            visible.rules,
            "; ".join(visible.purposes),
            visible.withheld,
            (sub, change.subject, visible),
        )

    def _render(self, draft: Draft, position: int) -> tuple[bytes, str]:
        sub, subject, visible = draft.extra
        body = body_of(
            notification=draft.id,
            subscription=sub,
            position=position,
            event_id=draft.event,
            subject=subject,
            visible=visible,
            now=self.clock(),
            curie=self.node.vocab.curie,
        )
        return body, sign_body(body, self.identity)

    # -- sending ------------------------------------------------------------------------

    def wake(self) -> None:
        """Tell the sending task there is work (from any thread)."""
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        """Send until cancelled, in the one process that holds the outbox's lock."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        with _sender_lock(str(self.outbox.path) + ".lock") as held:
            # another process of the node sends; take over if it stops (a lock has no event)
            while not held():  # noqa: ASYNC110
                await asyncio.sleep(5)
            while True:
                try:
                    while await self.deliver_due():
                        pass
                except Exception:  # never let the sender die silently
                    log.exception("sending notifications failed")
                await self._idle()

    async def _idle(self) -> None:
        assert self._wake is not None
        due = await asyncio.to_thread(self.outbox.next_due)
        delay = 5.0 if due is None else min(max(due - self.clock(), 0.01), 5.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
        self._wake.clear()

    async def deliver_due(self) -> int:
        """Try every due first-pending notification once; how many were delivered.

        The work off the event loop is done for the whole batch at once (the heads and
        their subscriptions; the policy at send time; the outcomes), so a burst costs
        three hops to a worker thread, not three per notification."""
        heads = await asyncio.to_thread(self._heads, self.clock())
        consumers = {sub.consumer_id for _, sub in heads}
        parties = {c: await self._party(c) for c in sorted(consumers)}
        ready = [(p, sub, parties[sub.consumer_id]) for p, sub in heads]
        sendable = await asyncio.to_thread(self._sendable, ready)
        errors = await asyncio.gather(*(self._post(p, url) for p, _, url in sendable))
        outcomes = [(p, sub, error) for (p, sub, _), error in zip(sendable, errors, strict=True)]
        outcomes += [(p, sub, party) for p, sub, party in ready if isinstance(party, str)]
        return await asyncio.to_thread(self._settle, outcomes)

    def _heads(self, now: float) -> list[tuple[Pending, Subscription]]:
        out = []
        for pending in self.outbox.due(now, _BATCH):
            sub = self.outbox.get(pending.subscription)
            if sub is not None and sub.status(now)[0] == "active":
                out.append((pending, sub))
        return out

    async def _party(self, consumer: str) -> Party | str:
        """The subscriber's registry entry, or why it cannot be sent to now."""
        try:
            party = await self.registry.party(consumer)
        except GatewayError as exc:
            return f"the registry could not be asked ({exc.detail})"
        error = _unreachable(party, self.clock(), consumer)
        return error if error or party is None else party

    def _sendable(
        self, ready: Sequence[tuple[Pending, Subscription, Party | str]]
    ) -> list[tuple[Pending, Subscription, str]]:
        """The policy at send time: what the subscriber may still read is sent (to its
        registered endpoint), the rest withdrawn."""
        out = []
        for pending, sub, party in ready:
            if isinstance(party, str):
                continue
            if not self._still_visible(pending, sub, party.roles):
                self.outbox.withdraw(pending)
                log.info("notification %s withdrawn: %s may no longer read it", pending.id, sub.consumer_id)
                continue
            assert party.endpoint is not None
            out.append((pending, sub, party.endpoint.rstrip("/") + sub.webhook_path))
        return out

    async def _post(self, pending: Pending, url: str) -> str:
        """POST one notification: "" when the subscriber took it, else what went wrong."""
        headers = {"content-type": "application/json", SIGNATURE_HEADER: pending.signature}
        try:
            answer = await self.http.post(url, content=pending.body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{url}: {type(exc).__name__} {exc}".strip()
        if not 200 <= answer.status_code < 300:
            return f"{url} answered {answer.status_code}"
        return ""

    def _settle(self, outcomes: Sequence[tuple[Pending, Subscription, str]]) -> int:
        """Record each attempt: delivered (and audited), or failed and retried later."""
        now = self.clock()
        for pending, sub, error in outcomes:
            if error:
                self._failed(pending, sub, error, now)
        delivered = [(p, sub) for p, sub, error in outcomes if not error]
        self.outbox.delivered([p for p, _ in delivered], now)
        for pending, sub in delivered:
            self._audit(pending, sub, f"notification {sub.id}#{pending.position}", now)
        return len(delivered)

    def _failed(self, pending: Pending, sub: Subscription, error: str, now: float) -> None:
        retry_at = now + self.retry.delay(pending.attempts)
        since = self.outbox.failed(pending, now, retry_at, error)
        log.warning(
            "notification %s to %s failed (attempt %d): %s",
            pending.id,
            sub.consumer_id,
            pending.attempts + 1,
            error,
        )
        if now - since >= self.retry.inactive_after:
            days = self.retry.inactive_after / 86400
            reason = (
                f"inactive since {iso(now)}: deliveries failed since {iso(since)} (more than {days:g} days; "
                f"last: {error}); the replay feed still serves its notifications"
            )
            self.outbox.deactivate(sub.id, reason)

    def _still_visible(self, pending: Pending, sub: Subscription, roles: Sequence[str]) -> bool:
        """The policy at send time: the grant the notification was made under, or one that
        still shows every field it carries."""
        grant = self.node.access.grant(Caller(sub.consumer_id, frozenset(roles)))
        if "|".join(grant.key) == pending.grant_key:
            return True
        stored = self.outbox.event(pending.event)
        if stored is None:
            return False
        subject, before, after = stored
        change = Changed(subject, tuple(_triples(before)), tuple(_triples(after)))
        lookup = self.node.access.lookup
        visible = visible_change(grant, sub.topic, change, lookup, lookup)
        return (
            visible is not None
            and visible.kind == pending.kind
            and set(pending.fields) <= set(visible.fields)
        )

    def _audit(self, pending: Pending, sub: Subscription, path: str, now: float) -> None:
        if self.audit is not None:
            subject = _subject_of(pending)
            self.audit.record(
                (
                    now,
                    pending.id,
                    sub.consumer_id,
                    path,
                    (subject,),
                    pending.fields,
                    pending.withheld,
                    pending.rules,
                    pending.purpose,
                )
            )

    # -- the replay feed ------------------------------------------------------------------

    def feed(self, sub: Subscription, roles: Sequence[str], since: int) -> tuple[dict[str, Any], list[str]]:
        """The subscription's notifications after position ``since``, in order: each as a
        compact JWS (the signed body attached), or ``withdrawn`` when the subscriber may no
        longer read it; and the fields the page releases (for the audit log). Read in a
        worker thread."""
        rows = self.outbox.feed(sub.id, since, _PAGE + 1)
        items: list[dict[str, Any]] = []
        released: set[str] = set()
        for p in rows[:_PAGE]:
            if p.state == "withdrawn" or not self._still_visible(p, sub, roles):
                items.append({"position": p.position, "withdrawn": True})
                continue
            released |= set(p.fields)
            items.append(
                {"position": p.position, "id": p.id, "state": p.state, "jws": attach(p.signature, p.body)}
            )
        last = items[-1]["position"] if items else since
        page = {
            "subscription_id": sub.id,
            "since": since,
            "next": last,
            "more": len(rows) > _PAGE,
            "items": items,
        }
        return page, sorted(released)

    def health(self) -> dict[str, Any]:
        return self.outbox.counts()


Subscribed = tuple[Subscription, tuple[str, ...]]


def _by_iri(subs: Sequence[Subscribed]) -> tuple[dict[str, list[Subscribed]], list[Subscribed]]:
    """The subscriptions whose topic names its resources exactly, by IRI, and the others:
    a change is matched against the few that name it and the ones that do not name any."""
    by_iri: dict[str, list[Subscribed]] = {}
    others: list[Subscribed] = []
    for item in subs:
        iris = item[0].topic.raw.get("iris", [])
        if iris and not any("*" in i for i in iris):
            for i in dict.fromkeys(iris):
                by_iri.setdefault(i, []).append(item)
        else:
            others.append(item)
    return by_iri, others


def _may_match(topic: Topic, change: Changed) -> bool:
    """A cheap first sieve on IRIs and classes, before any policy is decided."""
    rule = topic.selector
    if rule.iris and not any(p.match(change.subject) for p in rule.iris):
        return False
    if not rule.classes:
        return True
    node = ox.NamedNode(change.subject)
    types = {
        t.object.value
        for t in (*change.before, *change.after)
        if t.predicate == RDF_TYPE and t.subject == node and isinstance(t.object, ox.NamedNode)
    }
    return bool(types & rule.classes)


def _unreachable(party: Party | None, now: float, consumer: str) -> str:
    import datetime as dt

    if party is None:
        return f"{consumer} is no longer in the registry"
    inactive = party.active_at(dt.datetime.fromtimestamp(now, dt.UTC))
    if inactive:
        return inactive
    if not party.endpoint:
        return f"the registry lists no endpoint for {consumer}"
    return ""


def _subject_of(pending: Pending) -> str:
    import orjson

    body = orjson.loads(pending.body)
    return str(body["event"][0]["event_data"]["object"]["id"])


def _nt(triples: Sequence[ox.Triple]) -> str:
    return (ox.serialize(list(triples), format=ox.RdfFormat.N_TRIPLES) or b"").decode()


def _triples(text: str) -> list[ox.Triple]:
    return [q.triple for q in ox.parse(text.encode(), ox.RdfFormat.N_TRIPLES)]


@contextlib.contextmanager
def _sender_lock(path: str) -> Iterator[Callable[[], bool]]:
    """An advisory lock on ``path``: ``held()`` tries to take it (once held, it stays)."""
    file: IO[bytes] = open(path, "ab")  # noqa: SIM115 - held for the life of the sender
    state = {"held": False}

    def held() -> bool:
        if not state["held"]:
            with contextlib.suppress(BlockingIOError):
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                state["held"] = True
        return state["held"]

    try:
        yield held
    finally:
        file.close()
