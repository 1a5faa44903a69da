"""``dsgo subscribe`` and ``dsgo inbox``: change notifications for people at a terminal.

``dsgo subscribe --as NODE.toml --to URL`` asks another party's node (as this node's party,
with its keys) for a subscription: a topic (``--class``, ``--iri``, ``--where
FIELD=VALUE``), the fields whose change triggers (``--watch``) and the event types
(``--event``). Notifications go to this node's own ``/notifications``, as the registry
lists its endpoint; the subscription is remembered in this node's inbox, so ``dsgo inbox
--as NODE.toml --catch-up`` can read its replay feed later. ``--list`` and ``--cancel ID``
show and end the subscriptions this party has there.

``dsgo inbox --as NODE.toml`` lists what arrived, each signature checked again against
the registry now.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from gateway.cli.args import base_url, party_id
from gateway.config import NodeSettings, load_node_settings
from gateway.errors import GatewayError, InvalidSignature
from gateway.identity.detached import split
from gateway.notify.receive import Inbox, Received, verify_notification
from gateway.notify.subscription import EVENT_TYPES
from gateway.vocab import load_vocab

__all__ = ["add_parser", "call_node", "subscription_body"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("subscribe", help="subscribe to changes on another party's node")
    p.add_argument("--as", dest="config", type=Path, required=True, metavar="NODE.toml")
    p.add_argument(
        "--to", required=True, type=base_url, metavar="URL", help="the other node, http://HOST:PORT"
    )
    p.add_argument("--party", type=party_id, help="the other node's party id (default: from the registry)")
    p.add_argument(
        "--class", dest="classes", action="append", default=[], metavar="CLASS", help="e.g. bot:Building"
    )
    p.add_argument(
        "--iri", dest="iris", action="append", default=[], metavar="PATTERN", help="'*' matches any text"
    )
    p.add_argument(
        "--where", action="append", default=[], metavar="FIELD=VALUE", help="a value the resource has"
    )
    p.add_argument(
        "--watch", action="append", default=[], metavar="FIELD", help="a field whose change triggers"
    )
    p.add_argument("--event", action="append", choices=EVENT_TYPES, help="event types (default: all)")
    p.add_argument("--until", type=_date, metavar="DATE", help="end_date, YYYY-MM-DD")
    p.add_argument("--list", action="store_true", help="list this party's subscriptions there instead")
    p.add_argument("--cancel", metavar="ID", help="end one of them instead")
    p.add_argument("--json", action="store_true", help="print the subscription(s) as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the subscription id(s)")
    p.set_defaults(run=run_subscribe)

    p = sub.add_parser("inbox", help="the notifications this node received")
    p.add_argument("--as", dest="config", type=Path, required=True, metavar="NODE.toml")
    p.add_argument("--catch-up", action="store_true", help="first read the replay feeds of its subscriptions")
    p.add_argument("--json", action="store_true", help="print the notifications as JSON")
    p.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="first wait (at most this long) for one to arrive after the last dsgo subscribe",
    )
    p.set_defaults(run=run_inbox)


def _date(value: str) -> int:
    try:
        return int(dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC).timestamp())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date; write YYYY-MM-DD") from None


def subscription_body(args: argparse.Namespace) -> dict[str, Any]:
    """The DSGO subscription object the options describe."""
    topic: dict[str, Any] = {}
    if args.classes:
        topic["classes"] = args.classes
    if args.iris:
        topic["iris"] = args.iris
    where = []
    for item in args.where:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise GatewayError(f"--where {item!r}: write it as FIELD=VALUE, e.g. dsgo:municipalityCode=0363")
        where.append({"property": field, "equals": value})
    if where:
        topic["where"] = where
    body: dict[str, Any] = {"resource_type": "subscription", "topic": topic}
    if args.watch:
        body["watched"] = args.watch
    if args.event:
        body["event_type"] = args.event
    if args.until:
        body["end_date"] = args.until
    return body


def _settings(path: Path) -> NodeSettings:
    settings = load_node_settings(path)
    if settings.open:
        raise GatewayError(f"{settings.file}: an open node has no identity to subscribe or receive with")
    return settings


def _run(settings: NodeSettings, work: Callable[[Any, httpx.AsyncClient], Awaitable[Any]]) -> Any:
    """Run ``work(registry client, http)`` with this node's identity."""
    from gateway.http.app import make_auth, outbound_http

    async def main() -> Any:
        async with outbound_http() as http:
            return await work(make_auth(settings, http, time.time).trust, http)

    return asyncio.run(main())


async def call_node(
    registry: Any, http: httpx.AsyncClient, url: str, party: str | None, method: str, path: str, **kw: Any
) -> Any:
    """One request to another node with this party's token; its JSON, or one clear error."""
    from gateway.cli import _party_at

    who = party or await _party_at(registry, url)
    token = await registry.tokens.token(who, url)
    try:
        answer = await http.request(method, url + path, headers={"authorization": f"Bearer {token}"}, **kw)
    except httpx.HTTPError as exc:
        raise GatewayError(f"the node at {url} cannot be reached ({type(exc).__name__})") from None
    if answer.status_code >= 400:
        problem = answer.json() if answer.headers.get("content-type", "").endswith("json") else {}
        code = problem.get("code", answer.status_code)
        raise GatewayError(f"{url} refused ({code}): {problem.get('detail', answer.reason_phrase)}")
    return answer.json() if answer.content else None


def run_subscribe(args: argparse.Namespace) -> int:
    settings = _settings(args.config)

    async def work(registry: Any, http: httpx.AsyncClient) -> Any:
        if args.list:
            return (await call_node(registry, http, args.to, args.party, "GET", "/subscriptions"))[
                "subscriptions"
            ]
        if args.cancel:
            await call_node(registry, http, args.to, args.party, "DELETE", f"/subscriptions/{args.cancel}")
            return None
        body = subscription_body(args)
        return await call_node(registry, http, args.to, args.party, "POST", "/subscriptions", json=body)

    result = _run(settings, work)
    if args.cancel:
        print(f"cancelled subscription {args.cancel} at {args.to}")
        return 0
    subs = result if args.list else [result]
    if not args.list:
        with _inbox(settings) as inbox:
            inbox.remember(result, args.to)
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return 0
    for s in subs:
        print(s["id"] if args.quiet else _describe(s))
    return 0


def _describe(sub: dict[str, Any]) -> str:
    vocab = load_vocab()
    watched = (
        ", ".join(vocab.curie(w) for w in sub["watched"]) if sub["watched"] else "any field you may read"
    )
    status = sub["status"] + (f" ({sub['status_reason']})" if sub.get("status_reason") else "")
    return (
        f"subscription {sub['id']} at {sub['provider_id']}: {status}; {', '.join(sub['event_type'])} "
        f"of {orjson.dumps(sub['topic']).decode()} watching {watched}; notifications to {sub['webhook_url']}"
    )


def _inbox(settings: NodeSettings) -> contextlib.closing[Inbox]:
    return contextlib.closing(Inbox(settings.inbox_path))


def run_inbox(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    with _inbox(settings) as inbox:
        if args.wait:
            wait_for_new(inbox, args.wait)

        async def work(registry: Any, http: httpx.AsyncClient) -> list[tuple[Received, str]]:
            if args.catch_up:
                for sub_id, provider, url in inbox.subscriptions():
                    await _catch_up(inbox, registry, http, settings.party_id, (sub_id, provider, url))
            return [(r, await _check(r, registry, settings.party_id)) for r in inbox.received()]

        checked = _run(settings, work)
    if args.json:
        print(orjson.dumps([r.notification for r, _ in checked], option=orjson.OPT_INDENT_2).decode())
        return 0
    vocab = load_vocab()
    for received, verdict in checked:
        print(_line(received, verdict, vocab.curie))
    print(f"({len(checked)} notification{'s' if len(checked) != 1 else ''})")
    return 1 if any(v != "verified" for _, v in checked) else 0


def wait_for_new(inbox: Inbox, seconds: float) -> bool:
    """Wait (polling the inbox file, at most ``seconds``) until a notification arrived
    since the newest subscription ``dsgo subscribe`` made; False at the bound."""
    since = inbox.subscribed_last()
    deadline = time.monotonic() + seconds
    while inbox.last_received() < since:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


async def _catch_up(
    inbox: Inbox, registry: Any, http: httpx.AsyncClient, me: str, sub: tuple[str, str, str]
) -> None:
    """Read a subscription's replay feed from where this inbox stands, verify, keep."""
    sub_id, provider, url = sub
    more = True
    while more:
        since = inbox.cursor(sub_id)
        page = await call_node(
            registry, http, url, provider, "GET", f"/subscriptions/{sub_id}/events?since={since}"
        )
        for item in page["items"]:
            if "jws" in item:
                signature, body = split(item["jws"], InvalidSignature)
                data = await verify_notification(body, signature, me=me, trust=registry, now=time.time())
                inbox.add(data, body, signature, time.time(), "feed")
        inbox.advance(sub_id, page["next"])
        more = page["more"] and page["next"] > since


async def _check(received: Received, registry: Any, me: str) -> str:
    try:
        await verify_notification(received.body, received.signature, me=me, trust=registry, now=time.time())
    except InvalidSignature as exc:
        return f"NOT VERIFIED: {exc.detail}"
    return "verified"


def _line(received: Received, verdict: str, curie: Callable[[str], str]) -> str:
    note = received.notification
    event = note["event"][0]
    obj = event["event_data"]["object"]
    values = obj.get("values", {})
    shown = ", ".join(f"{curie(f)}={_plain(values.get(f))}" for f in obj["changed"])
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(received.received))
    return (
        f"{when}  #{note['position']} from {note['provider_id']} ({received.via}): {event['event_type']} "
        f"{obj['id']}: {shown}  [signature {verdict}]"
    )


def _plain(values: Any) -> str:
    if not values:
        return "-"
    return "|".join(v if isinstance(v, str) else str(v.get("@value", v.get("@id", v))) for v in values)
