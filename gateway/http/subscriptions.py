"""``/subscriptions`` (DSGO's subscription API) and ``/notifications`` (this party's webhook).

Provider side, bearer-authenticated (``gateway.notify.notifier`` does the work):

- ``POST /subscriptions``: a DSGO subscription object with ``topic`` and ``watched``;
  201 with the subscription as stored, or ``invalid_subscription``,
  ``subscription_expired``, ``webhook_outside_endpoint``, ``subscription_refused``;
- ``GET /subscriptions``: the caller's own; ``GET``/``DELETE /subscriptions/{id}``: one
  of them (anyone else's is a 404 like a missing one);
- ``GET /subscriptions/{id}/events?since=N``: the replay feed after position ``N``;
- ``POST /subscriptions/store-changed``: the node's own party has its remote store
  checked for changes now (``gateway.store.watch``), not at the next ``watch`` interval.

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
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.http.auth import Auth, bearer, json_response
from gateway.http.openapi import JSON_OBJECT, Body, Operation, Reply, describe, header, query
from gateway.http.state import node_state
from gateway.identity.detached import MAX_BODY
from gateway.node import Node
from gateway.notify.notifier import SIGNATURE_HEADER, WEBHOOK_PATH, Notifier, Retry
from gateway.notify.outbox import Outbox
from gateway.notify.receive import Inbox, verify_notification
from gateway.notify.subscription import EVENT_TYPES, Subscription
from gateway.policy.model import Caller
from gateway.store.remote import RemoteSources
from gateway.store.sources import Sources

__all__ = ["EVENT_TYPES", "make_notifications", "routes"]


def make_notifications(
    settings: NodeSettings, node: Node, auth: Auth | None, http: httpx.AsyncClient, clock: Callable[[], float]
) -> tuple[Notifier | None, Inbox | None]:
    """The node's notifier and inbox: none on an open node (no identity to sign with)
    nor on one reading a remote store that is not watched (``watch = 0``). A file source
    tells the notifier before a new version is served; a remote store's watch after
    another writer changed it (``gateway.store.watch``): one pipeline for both."""
    if auth is None:
        return None, None
    inbox = Inbox(settings.inbox_path)
    sources = node.sources
    watch = None
    if isinstance(sources, RemoteSources):
        seen = settings.outbox_path.with_name(f"{settings.outbox_path.stem}.{sources.name}.seen.sqlite")
        watch = sources.watch_changes(seen)
        if watch is None:
            return None, inbox
    retry = Retry(settings.retry_base, settings.retry_longest, settings.inactive_after_days * 86400)
    outbox = Outbox(settings.outbox_path, node.vocab)
    notifier = Notifier(
        node, auth.identity, outbox, auth.trust, http, audit=node.audit, clock=clock, retry=retry
    )
    if watch is not None:
        watch.watchers.append(notifier.store_changed)
    elif isinstance(sources, Sources):
        sources.before_replace.append(notifier.changed)
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


_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}
_WHEN = {"type": ["number", "string", "null"], "description": "a UNIX timestamp, or ISO 8601"}
#: DSGO's subscription object as a request: server-set members may be sent and are ignored
_REQUEST = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "id": {},
        "resource_type": {"const": "subscription"},
        "created_date": {},
        "status": {},
        "status_reason": {},
        "consumer_id": {"type": "string", "description": "the caller, if given"},
        "provider_id": {"type": "string", "description": "this node's party, if given"},
        "event_type": {"type": "array", "items": {"enum": list(EVENT_TYPES)}, "minItems": 1},
        "webhook_url": {"type": "string", "minLength": 1, "description": "under your registered endpoint"},
        "start_date": _WHEN,
        "end_date": _WHEN,
        "description": {"type": "string", "maxLength": 1000},
        "topic": {
            "type": "object",
            "description": "a policy rule's resources: classes, iris (* patterns), where conditions",
            "additionalProperties": False,
            "properties": {
                "classes": _NAMES,
                "iris": _NAMES,
                "where": {"type": "array", "items": JSON_OBJECT},
            },
        },
        "watched": {**_NAMES, "description": "the fields whose change triggers (NGSI-LD watchedAttributes)"},
    },
}
_SUBSCRIPTION = Reply(
    "the subscription (DSGO's object, with topic and watched)", {"application/json": JSON_OBJECT}
)
_TAGS = ("subscriptions",)


@describe(
    post=Operation(
        "Subscribe to changes of the fields you may read (DSGO subscription object)",
        "Accepted only for fields you may read on at least one resource of the topic now; "
        "notifications go to your own endpoint as the registry lists it, signed.",
        _TAGS,
        body=Body({"application/json": _REQUEST}),
        replies={201: _SUBSCRIPTION},
        errors=(400, 403, 404),
        operation_id="postSubscription",
    )
)
async def create(request: Request) -> Response:
    caller = bearer(request)
    notifier = _notifier(request)
    sub = await notifier.subscribe(caller, await request.body())
    return json_response(sub.document(notifier.clock()), 201, {"location": f"/subscriptions/{sub.id}"})


@describe(
    get=Operation(
        "Your subscriptions on this node",
        tags=_TAGS,
        replies={200: Reply("the subscriptions", {"application/json": JSON_OBJECT})},
        errors=(404,),
        operation_id="getSubscriptions",
    )
)
async def listing(request: Request) -> Response:
    caller = bearer(request)
    notifier = _notifier(request)
    assert caller.party_id is not None
    subs = await asyncio.to_thread(notifier.outbox.of, caller.party_id)
    now = notifier.clock()
    return json_response({"subscriptions": [s.document(now) for s in subs]})


@describe(
    get=Operation(
        "One of your subscriptions, with its status (inactive: why)",
        tags=_TAGS,
        replies={200: _SUBSCRIPTION},
        errors=(404,),
        operation_id="getSubscription",
    ),
    delete=Operation(
        "End one of your subscriptions",
        tags=_TAGS,
        replies={204: Reply("ended")},
        errors=(404,),
        operation_id="deleteSubscription",
    ),
)
async def one(request: Request) -> Response:
    caller = bearer(request)
    notifier = _notifier(request)
    sub = _own(request, notifier, caller)
    if request.method == "DELETE":
        await asyncio.to_thread(notifier.outbox.delete, sub.id)
        return Response(status_code=204)
    return json_response(sub.document(notifier.clock()))


@describe(
    get=Operation(
        "The replay feed: a subscription's notifications after a position, in order",
        "Each item is the signed notification as a compact JWS, or withdrawn when the policy "
        "no longer lets you read it; follow 'next' while 'more'.",
        _TAGS,
        parameters=(
            query(
                "since",
                "the last position you hold (0: from the start)",
                {"type": "string", "pattern": "^[0-9]{1,18}$"},
            ),
        ),
        replies={200: Reply("a page of the feed", {"application/json": JSON_OBJECT})},
        errors=(400, 404),
        operation_id="getSubscriptionEvents",
    )
)
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


@describe(
    post=Operation(
        "Take a notification for this node's party (the webhook other nodes post to)",
        "A DSGO notification object, signed by its provider: a detached JWS (RFC 7515 "
        "Appendix F) over the body in x-jws-signature, verified against the registry.",
        _TAGS,
        auth="none",
        parameters=(header("x-jws-signature", "the detached JWS over the body"),),
        body=Body({"application/json": JSON_OBJECT}),
        replies={200: Reply("kept (or a duplicate, dropped)", {"application/json": JSON_OBJECT})},
        errors=(400, 401, 404),
        operation_id="postNotification",
    )
)
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


@describe(
    post=Operation(
        "Check the node's remote store for changes now (its own party only)",
        "For the store's owner after writing to it: the check the node makes every "
        "'watch' seconds, made at once; changes found are notified as any other.",
        _TAGS,
        replies={200: Reply("the check was made", {"application/json": JSON_OBJECT})},
        errors=(403, 404, 502),
        operation_id="postStoreChanged",
    )
)
async def store_changed(request: Request) -> Response:
    """The node's own party says its remote store changed: check it now."""
    caller = bearer(request)
    state = node_state(request)
    sources = state.node.sources
    watch = sources.watch if isinstance(sources, RemoteSources) else None
    if watch is None:
        raise NotFound("this node watches no remote store (its sources are re-read when they change)")
    if caller.party_id != state.settings.party_id:
        raise Forbidden("only this node's own party may say that its store changed")
    changed = await asyncio.to_thread(watch.poll)
    return json_response({"changed": changed})


def routes() -> list[Route]:
    return [
        Route("/subscriptions/store-changed", store_changed, methods=["POST"]),
        Route("/subscriptions", create, methods=["POST"]),
        Route("/subscriptions", listing, methods=["GET"]),
        Route("/subscriptions/{id}", one, methods=["GET", "DELETE"]),
        Route("/subscriptions/{id}/events", events, methods=["GET"]),
        Route(WEBHOOK_PATH, webhook, methods=["POST"]),
    ]
