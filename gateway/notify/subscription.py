"""Subscriptions: DSGO's subscription object, with a topic and watched fields.

The wire shape is DSGO's (afsprakenstelsel, subscription object): ``id``,
``resource_type: "subscription"``, ``consumer_id``, ``provider_id``, ``event_type`` (a
list of the provider's event types), ``webhook_url``, ``created_date``, ``start_date``,
``end_date`` (UNIX timestamps; ISO 8601 is read too, as older revisions wrote it),
``status`` (``active`` or ``inactive``) and ``description``. Two extension members say
*what* is watched, in the terms policy rules use (``gateway.policy.load``):

- ``topic``: ``classes``, ``iris`` (``*`` patterns) and ``where`` conditions on the
  resource's own values, exactly a rule's ``resources`` (checked against the same JSON
  Schema, names resolved through the same vocabulary); ``via`` links are refused, since
  a topic is decided on the subscriber's view of one resource;
- ``watched``: the fields whose change triggers, as NGSI-LD's ``watchedAttributes``
  (absent: any field the subscriber may read).

Event types are relative to the subscriber's view of the topic: ``created`` (a resource
entered it), ``updated`` (visible watched fields changed), ``deleted`` (it left it).
Every refusal is an ``InvalidSubscription`` (``invalid_subscription``) naming the member.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import orjson

from gateway.errors import InvalidSubscription, SubscriptionExpired
from gateway.policy.load import _condition, _pattern
from gateway.policy.model import Condition, Rule
from gateway.vocab import Vocab

__all__ = ["EVENT_TYPES", "MAX_BODY", "Subscription", "Topic", "iso", "never", "parse_request", "topic_of"]

EVENT_TYPES = ("created", "updated", "deleted")
MAX_BODY = 64 * 1024
_SERVER_SET = {"id", "resource_type", "created_date", "status", "status_reason"}
_MEMBERS = {"consumer_id", "provider_id", "event_type", "webhook_url", "start_date", "end_date"}
_MEMBERS |= {"description", "topic", "watched"} | _SERVER_SET


@dataclass(frozen=True, slots=True)
class Topic:
    """What a subscription watches: the topic as given, compiled into a rule's selector."""

    raw: dict[str, Any]
    selector: Rule
    #: expanded field IRIs whose change triggers; None: every field
    watched: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    consumer_id: str
    provider_id: str
    event_types: tuple[str, ...]
    #: where notifications go, as given (under the consumer's registered endpoint)
    webhook_url: str
    #: the part of ``webhook_url`` after that endpoint: what is posted to, at the endpoint
    #: the registry lists when a notification is sent
    webhook_path: str
    created: float
    start: float | None
    end: float | None
    description: str
    topic: Topic = field(compare=False)
    #: "inactive" once deliveries failed for too long (``reason`` says since when)
    stored_status: str = "active"
    reason: str = ""

    def status(self, now: float) -> tuple[str, str]:
        """(``active`` | ``inactive``, why inactive) at ``now``: expiry by ``end_date``."""
        if self.stored_status != "active":
            return self.stored_status, self.reason
        if self.end is not None and now >= self.end:
            return "inactive", f"expired at {iso(self.end)} (its end_date)"
        if self.start is not None and now < self.start:
            return "inactive", f"starts at {iso(self.start)} (its start_date)"
        return "active", ""

    def document(self, now: float) -> dict[str, Any]:
        """The DSGO subscription object, with the extension members."""
        status, reason = self.status(now)
        doc: dict[str, Any] = {
            "id": self.id,
            "resource_type": "subscription",
            "consumer_id": self.consumer_id,
            "provider_id": self.provider_id,
            "event_type": list(self.event_types),
            "webhook_url": self.webhook_url,
            "created_date": int(self.created),
            "start_date": None if self.start is None else int(self.start),
            "end_date": None if self.end is None else int(self.end),
            "status": status,
            "description": self.description,
            "topic": self.topic.raw,
            "watched": None if self.topic.watched is None else sorted(self.topic.watched),
        }
        if reason:
            doc["status_reason"] = reason
        return doc


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- reading a request ------------------------------------------------------------------


def parse_request(
    body: bytes, *, consumer: str, provider: str, vocab: Vocab, now: float
) -> tuple[Subscription, str | None]:
    """A new subscription from a ``POST /subscriptions`` body, and the ``webhook_url`` it
    asks for (None: the default). The webhook is checked against the registry by the
    caller (``check_webhook``), which then fills in ``webhook_url``/``webhook_path``."""
    data = _object(body)
    unknown = sorted(set(data) - _MEMBERS)
    if unknown:
        raise InvalidSubscription(f"unknown member {unknown[0]!r} (members: {', '.join(sorted(_MEMBERS))})")
    _same(data, "consumer_id", consumer, "you (the caller)")
    _same(data, "provider_id", provider, "this node's party")
    if data.get("resource_type", "subscription") != "subscription":
        raise InvalidSubscription("resource_type must be 'subscription'")
    start, end = _date(data, "start_date"), _date(data, "end_date")
    if start is not None and end is not None and end <= start:
        raise InvalidSubscription("end_date must be after start_date")
    if end is not None and end <= now:
        raise SubscriptionExpired(f"end_date {iso(end)} has passed: the subscription would never be active")
    webhook = data.get("webhook_url")
    if webhook is not None and (not isinstance(webhook, str) or not webhook):
        raise InvalidSubscription("webhook_url must be a URL (a non-empty string)")
    subscription = Subscription(
        id=uuid.uuid4().hex,
        consumer_id=consumer,
        provider_id=provider,
        event_types=_event_types(data.get("event_type")),
        webhook_url="",
        webhook_path="",
        created=now,
        start=start,
        end=end,
        description=_text(data, "description"),
        topic=topic_of(data.get("topic", {}), data.get("watched"), vocab),
    )
    return subscription, webhook


def _object(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY:
        raise InvalidSubscription(f"the body is larger than {MAX_BODY} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidSubscription("the body is not JSON; send a DSGO subscription object") from None
    if not isinstance(data, dict):
        raise InvalidSubscription("the body must be a JSON object (a DSGO subscription object)")
    return data


def _same(data: dict[str, Any], key: str, expected: str, who: str) -> None:
    if key in data and data[key] != expected:
        raise InvalidSubscription(f"{key} must be {expected} ({who}), got {data[key]!r}")


def _date(data: dict[str, Any], key: str) -> float | None:
    """A UNIX timestamp (DSGO), or an ISO 8601 date or time (older revisions)."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e11:
        return float(value)
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
    raise InvalidSubscription(f"{key} must be a UNIX timestamp (seconds) or an ISO 8601 date, got {value!r}")


def _event_types(value: Any) -> tuple[str, ...]:
    if value is None:
        return EVENT_TYPES
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise InvalidSubscription("event_type must be a non-empty list of event types")
    unknown = [v for v in values if v not in EVENT_TYPES]
    if unknown:
        raise InvalidSubscription(
            f"unknown event_type {unknown[0]!r}; this node offers {', '.join(EVENT_TYPES)}"
        )
    return tuple(t for t in EVENT_TYPES if t in values)


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or len(value) > 1000:
        raise InvalidSubscription(f"{key} must be a text of at most 1000 characters")
    return value


# -- the topic, in the terms of policy rules --------------------------------------------


@cache
def _topic_validator() -> jsonschema.Draft202012Validator:
    """A rule's ``resources`` object from the policy files' own JSON Schema."""
    text = (resources.files("gateway._policies") / "schema.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    selector = schema["$defs"]["rule"]["properties"]["resources"]["oneOf"][1]
    whole = {"$schema": schema["$schema"], "$defs": schema["$defs"], **selector, "minProperties": 0}
    return jsonschema.Draft202012Validator(whole)


def topic_of(raw: Any, watched: Any, vocab: Vocab) -> Topic:
    """The topic compiled into a permit rule's selector (so ``gateway.policy.conditions.matches``
    decides it), and the watched fields expanded; names as in policy files."""
    if not isinstance(raw, dict):
        raise InvalidSubscription("topic must be an object with classes, iris and/or where")
    errors = sorted(_topic_validator().iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        at = "/".join(map(str, errors[0].absolute_path))
        raise InvalidSubscription(f"topic{'/' + at if at else ''}: {errors[0].message}")
    iri = _expander(vocab)
    where = [_condition(c, iri, InvalidSubscription) for c in raw.get("where", [])]
    if any(c.via for c in where):
        raise InvalidSubscription("topic/where: conditions on linked resources (via) are not offered")
    classes = frozenset(iri(c, "class") for c in raw.get("classes", []))
    selector = _selector(classes, tuple(_pattern(p) for p in raw.get("iris", [])), tuple(where))
    return Topic(raw, selector, _watched(watched, iri))


def _selector(
    classes: frozenset[str], iris: tuple[re.Pattern[str], ...], where: tuple[Condition, ...]
) -> Rule:
    return Rule(
        id="topic",
        file="",
        line=0,
        effect="permit",
        parties=frozenset(),
        roles=frozenset(),
        anyone=True,
        classes=classes,
        iris=iris,
        where=where,
        fields=None,
        exclude=frozenset(),
    )


def never(raw: dict[str, Any]) -> Topic:
    """A topic nothing matches: a stored subscription whose terms no longer resolve."""
    return Topic(raw, _selector(frozenset(), (re.compile(r"(?!)"),), ()), frozenset())


def _watched(value: Any, iri: Callable[[str, str], str]) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise InvalidSubscription("watched must be a non-empty list of fields (prefix:name or IRIs)")
    return frozenset(iri(v, "field") for v in value)


def _expander(vocab: Vocab) -> Callable[[str, str], str]:
    """Prefixed names and IRIs as policy files write them: a name in a namespace vocab/
    defines in full must be declared there, so a misspelt field is an error."""

    def iri(name: str, what: str) -> str:
        expanded = vocab.expand(name)
        if expanded is None:
            raise InvalidSubscription(
                f"unknown prefix in {what} {name!r} (prefixes come from vocab/context.jsonld)"
            )
        if not vocab.known(expanded):
            raise InvalidSubscription(f"unknown {what} {name!r}: {expanded} is not declared in vocab/")
        return expanded

    return iri
