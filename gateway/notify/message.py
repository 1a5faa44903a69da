"""The notification a subscriber receives: DSGO's notification object, one event in it.

DSGO (afsprakenstelsel, notification and event objects): ``id``, ``resource_type:
"notification"``, ``date``, ``consumer_id``, ``provider_id``, ``subscription_id``,
``description`` and ``event``, a list of events (``id``, ``resource_type: "event"``,
``event_type``, ``date``, ``description``, ``event_data``). A node sends one event per
notification, so every notification has one stable ``id`` a receiver drops duplicates
by, and ``position``, its place in the subscription's replay feed. ``event_data`` is an
Activity Streams 2.0 activity (``Create``, ``Update``, ``Delete``; Solid Notifications
§7 uses the same) whose ``object`` is the resource, the visible fields that changed and
their values now, in JSON-LD's expanded value form. Everything in it comes from the
subscriber's view (``gateway.notify.change.Visible``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pyoxigraph as ox

from gateway.notify.change import Visible

__all__ = ["AS2", "body_of", "notification_id"]

AS2 = "https://www.w3.org/ns/activitystreams"
_ACTIVITY = {"created": "Create", "updated": "Update", "deleted": "Delete"}
_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"


def notification_id(subscription_id: str, event_id: str) -> str:
    """Stable per event and subscription: a retry, or a second read of the same source
    change after a crash, carries the same id."""
    return hashlib.sha256(f"{subscription_id}\0{event_id}".encode()).hexdigest()[:32]


def body_of(
    *,
    notification: str,
    subscription: Any,
    position: int,
    event_id: str,
    subject: str,
    visible: Visible,
    now: float,
    curie: Callable[[str], str] = str,
) -> bytes:
    """The notification's bytes (compact JSON, keys sorted): what is signed and stored."""
    what = f"{visible.kind}: {subject} ({', '.join(map(curie, visible.fields))})"
    published = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    obj: dict[str, Any] = {"id": subject, "changed": list(visible.fields)}
    if visible.kind != "deleted":
        obj["values"] = _values(ox.NamedNode(subject), visible.triples)
    event = {
        "id": event_id,
        "resource_type": "event",
        "event_type": visible.kind,
        "date": int(now),
        "description": what,
        "event_data": {
            "@context": AS2,
            "type": _ACTIVITY[visible.kind],
            "actor": subscription.provider_id,
            "published": published,
            "object": obj,
        },
    }
    body = {
        "id": notification,
        "resource_type": "notification",
        "date": int(now),
        "consumer_id": subscription.consumer_id,
        "provider_id": subscription.provider_id,
        "subscription_id": subscription.id,
        "position": position,
        "description": what,
        "event": [event],
    }
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def _values(subject: ox.NamedNode, triples: Sequence[ox.Triple]) -> dict[str, list[Any]]:
    index: dict[Any, list[ox.Triple]] = {}
    for t in triples:
        index.setdefault(t.subject, []).append(t)
    return _node(subject, index, 0)


def _node(node: Any, index: dict[Any, list[ox.Triple]], depth: int) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for t in index.get(node, ()):
        out.setdefault(t.predicate.value, []).append(_value(t.object, index, depth))
    return {p: sorted(v, key=orjson.dumps) for p, v in sorted(out.items())}


def _value(term: Any, index: dict[Any, list[ox.Triple]], depth: int) -> Any:
    """JSON-LD 1.1 expanded form (§9.3): ``{"@id"}``, ``{"@value", "@type"|"@language"}``;
    a plain string for an ``xsd:string``; a blank node as the object it describes."""
    if isinstance(term, ox.NamedNode):
        return {"@id": term.value}
    if isinstance(term, ox.BlankNode):
        return _node(term, index, depth + 1) if depth < 8 else {}
    if not isinstance(term, ox.Literal):
        return str(term)
    if term.language:
        return {"@value": term.value, "@language": term.language}
    if term.datatype.value == _XSD_STRING:
        return term.value
    return {"@value": term.value, "@type": term.datatype.value}
