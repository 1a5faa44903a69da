"""``/subscriptions`` (DSGO's subscription API) and ``/notifications`` (this party's webhook).

Provider side, bearer-authenticated (``gateway.notify.notifier`` does the work):

- ``POST /subscriptions``: a DSGO subscription object with ``topic`` and ``watched``;
  201 with the subscription as stored, or ``invalid_subscription``,
  ``subscription_expired``, ``webhook_outside_endpoint``, ``subscription_refused``;
- ``GET /subscriptions``: the caller's own; ``GET``/``DELETE /subscriptions/{id}``: one
  of them (anyone else's is a 404 like a missing one);
- ``GET /subscriptions/{id}/events?since=N``: the replay feed after position ``N``.

Consumer side: ``POST /notifications`` takes a notification for this node's party, checks
its signature and sender (``gateway.notify.receive``) and keeps it once in the inbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.config import NodeSettings
from gateway.errors import BadRequest, NotFound
from gateway.http.auth import Auth, bearer, json_response
from gateway.http.state import node_state
from gateway.identity.detached import MAX_BODY
from gateway.node import Node
from gateway.notify.notifier import SIGNATURE_HEADER, WEBHOOK_PATH, Notifier, Retry
from gateway.notify.outbox import Outbox
from gateway.notify.receive import Inbox, verify_notification
from gateway.notify.subscription import EVENT_TYPES, Subscription
from gateway.policy.model import Caller
from gateway.store.sources import Sources

__all__ = ["EVENT_TYPES", "make_notifications", "routes"]


def make_notifications(
    settings: NodeSettings, node: Node, auth: Auth | None, http: httpx.AsyncClient, clock: Callable[[], float]
) -> tuple[Notifier | None, Inbox | None]:
    """The node's notifier and inbox: none on an open node (no identity to sign with)
    nor on one reading a remote store (whose changes it is not told of)."""
    if auth is None:
        return None, None
    inbox = Inbox(settings.inbox_path)
    if not isinstance(node.sources, Sources):
        return None, inbox
    retry = Retry(settings.retry_base, settings.retry_longest, settings.inactive_after_days * 86400)
    outbox = Outbox(settings.outbox_path, node.vocab)
    notifier = Notifier(
        node, auth.identity, outbox, auth.trust, http, audit=node.audit, clock=clock, retry=retry
    )
    node.sources.before_replace.append(notifier.changed)
    return notifier, inbox


def _notifier(request: Request) -> Notifier:
    notifier = node_state(request).notifier
    if notifier is None:
        raise NotFound("this node offers no subscriptions (see /capabilities)")
    return notifier


def _own(request: Request, notifier: Notifier, caller: Caller) -> Subscription:
    sub = notifier.outbox.get(request.path_params["id"])
    if sub is None or sub.consumer_id != caller.party_id:
        raise NotFound(f"no subscription {request.path_params['id']} of yours on this node")
    return sub


async def create(request: Request) -> Response:
    caller = bearer(request)
    notifier = _notifier(request)
    sub = await notifier.subscribe(caller, await request.body())
    return json_response(sub.document(notifier.clock()), 201, {"location": f"/subscriptions/{sub.id}"})


async def listing(request: Request) -> Response:
    caller = bearer(request)
    notifier = _notifier(request)
    assert caller.party_id is not None
    subs = await asyncio.to_thread(notifier.outbox.of, caller.party_id)
    now = notifier.clock()
    return json_response({"subscriptions": [s.document(now) for s in subs]})


async def one(request: Request) -> Response:
    caller = bearer(request)
    notifier = _notifier(request)
    sub = _own(request, notifier, caller)
    if request.method == "DELETE":
        await asyncio.to_thread(notifier.outbox.delete, sub.id)
        return Response(status_code=204)
    return json_response(sub.document(notifier.clock()))


async def events(request: Request) -> Response:
    caller = bearer(request)
    notifier = _notifier(request)
    sub = _own(request, notifier, caller)
    raw = request.query_params.get("since", "0")
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest(f"since must be a position (0, or the 'next' of the previous page), got {raw!r}")
    page, released = await asyncio.to_thread(notifier.feed, sub, sorted(caller.roles), int(raw))
    audit = node_state(request).audit
    if audit is not None and page["items"]:
        rid = request.headers.get("x-request-id", "")
        audit.record(
            (notifier.clock(), rid, sub.consumer_id, request.url.path, (), tuple(released), 0, (), "")
        )
    return json_response(page)


async def webhook(request: Request) -> Response:
    """A notification for this node's party: verified, kept once, acknowledged."""
    state = node_state(request)
    if state.inbox is None or state.auth is None:
        raise NotFound("this node takes no notifications")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise BadRequest(f"a notification must be smaller than {MAX_BODY} bytes")
    now = state.clock()
    data = await verify_notification(
        body,
        request.headers.get(SIGNATURE_HEADER),
        me=state.settings.party_id,
        trust=state.auth.trust,
        now=now,
    )
    signature = request.headers[SIGNATURE_HEADER]
    new = await asyncio.to_thread(state.inbox.add, data, body, signature, now, "webhook")
    return json_response({"id": data["id"], "duplicate": not new})


def routes() -> list[Route]:
    return [
        Route("/subscriptions", create, methods=["POST"]),
        Route("/subscriptions", listing, methods=["GET"]),
        Route("/subscriptions/{id}", one, methods=["GET", "DELETE"]),
        Route("/subscriptions/{id}/events", events, methods=["GET"]),
        Route(WEBHOOK_PATH, webhook, methods=["POST"]),
    ]
