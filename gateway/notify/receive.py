"""The receiving side: verify a notification, keep it once in the node's inbox.

A notification is trusted when its detached JWS (``x-jws-signature``, see
``gateway.identity.detached``) verifies over the exact body with the key of the first
certificate of its ``x5c`` chain, that chain ends in a CA on the registry's trusted list
(``gateway.identity.trust.check_chain``, as for client assertions), the certificate is
the one the registry lists for the party, that party is active, it is the body's
``provider_id``, and the body's ``consumer_id`` is this node's party. Notifications
fetched from a replay feed carry the same signature attached (a compact JWS) and are
verified the same way. The inbox keeps each notification ``id`` once: a retried
delivery is acknowledged and dropped.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.errors import InvalidSignature, refusal
from gateway.identity.detached import header_of, verify_body
from gateway.identity.pki import fingerprint
from gateway.identity.token_endpoint import TrustSource
from gateway.identity.trust import check_chain, parse_x5c

__all__ = ["Inbox", "Received", "verify_notification"]

_fail = refusal(InvalidSignature)


async def verify_notification(
    body: bytes, signature: str | None, *, me: str, trust: TrustSource, now: float
) -> dict[str, Any]:
    """The notification in ``body`` once its signature and sender hold; else ``InvalidSignature``."""
    if not signature:
        raise InvalidSignature("no x-jws-signature header: notifications must be signed (detached JWS)")
    header = header_of(signature, InvalidSignature)
    chain = parse_x5c(header.get("x5c"), _fail)
    trusted = [ca.fingerprint for ca in await trust.trusted() if ca.usable]
    names = check_chain(chain, trusted, dt.datetime.fromtimestamp(now, dt.UTC), _fail)
    key = chain[0].public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidSignature("the signing certificate does not hold an RSA key")
    verify_body(signature, body, key, InvalidSignature)
    data = _notification(body)
    signer = data["provider_id"]
    if signer not in names:
        raise InvalidSignature(
            f"signed by {', '.join(sorted(names))}, but the notification says it is from {signer}",
            reason="signer_not_provider",
        )
    if data["consumer_id"] != me:
        raise InvalidSignature(f"the notification is for {data['consumer_id']}, not for this party ({me})")
    await _registered(trust, signer, fingerprint(chain[0]), now)
    return data


def _notification(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidSignature("the signed body is not JSON") from None
    fields = ("id", "provider_id", "consumer_id", "subscription_id")
    if not isinstance(data, dict) or data.get("resource_type") != "notification":
        raise InvalidSignature("the signed body is not a DSGO notification object")
    if not all(isinstance(data.get(f), str) and data[f] for f in fields) or not isinstance(
        data.get("position"), int
    ):
        raise InvalidSignature(f"a notification needs {', '.join(fields)} (texts) and position (a number)")
    return data


async def _registered(trust: TrustSource, signer: str, print_: str, now: float) -> None:
    party = await trust.party(signer)
    if party is None:
        raise InvalidSignature(f"{signer} is not a participant in the registry")
    inactive = party.active_at(dt.datetime.fromtimestamp(now, dt.UTC))
    if inactive:
        raise InvalidSignature(inactive)
    if print_ not in party.certificates:
        raise InvalidSignature(f"the signing certificate is not the one registered for {signer}")


@dataclass(frozen=True, slots=True)
class Received:
    id: str
    provider: str
    subscription: str
    position: int
    body: bytes
    signature: str
    received: float
    via: str  # "webhook" or "feed"

    @property
    def notification(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.body)
        return value


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS received (id TEXT PRIMARY KEY, provider TEXT NOT NULL,"
    " subscription TEXT NOT NULL, position INTEGER NOT NULL, body BLOB NOT NULL, signature TEXT NOT NULL,"
    " received REAL NOT NULL, via TEXT NOT NULL, duplicates INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS subscriptions (id TEXT PRIMARY KEY, provider TEXT NOT NULL,"
    " url TEXT NOT NULL, document TEXT NOT NULL, cursor INTEGER NOT NULL DEFAULT 0)",
)


class Inbox:
    """The notifications a node received for its party, each once (SQLite, WAL)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._lock = threading.Lock()
        for statement in _SCHEMA:
            self._db.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, data: dict[str, Any], body: bytes, signature: str, now: float, via: str) -> bool:
        """Keep a verified notification; False if its id was here already (a duplicate)."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO received (id, provider, subscription, position, body, signature,"
                " received, via) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    data["id"],
                    data["provider_id"],
                    data["subscription_id"],
                    data["position"],
                    body,
                    signature,
                    now,
                    via,
                ),
            )
            if cursor.rowcount:
                return True
            self._db.execute("UPDATE received SET duplicates = duplicates + 1 WHERE id = ?", (data["id"],))
            return False

    def received(self, limit: int = 1000) -> list[Received]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, provider, subscription, position, body, signature, received, via FROM received"
                " ORDER BY received, subscription, position LIMIT ?",
                (limit,),
            ).fetchall()
        return [Received(r[0], r[1], r[2], r[3], bytes(r[4]), r[5], r[6], r[7]) for r in rows]

    def last_received(self) -> float:
        """When the newest notification arrived (0: none has)."""
        with self._lock:
            row = self._db.execute("SELECT MAX(received) FROM received").fetchone()
        return float(row[0] or 0)

    def subscribed_last(self) -> float:
        """When the newest subscription remembered here was made (0: none was)."""
        with self._lock:
            rows = self._db.execute("SELECT document FROM subscriptions").fetchall()
        return max((float(orjson.loads(r[0]).get("created_date", 0)) for r in rows), default=0.0)

    def duplicates(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(duplicates), 0) FROM received").fetchone()[0])

    def remember(self, subscription: dict[str, Any], url: str) -> None:
        """A subscription this party made (``dsgo subscribe``), to catch up on later."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO subscriptions (id, provider, url, document) VALUES (?, ?, ?, ?)",
                (subscription["id"], subscription["provider_id"], url, orjson.dumps(subscription)),
            )

    def subscriptions(self) -> list[tuple[str, str, str]]:
        """(id, provider, url) of the subscriptions remembered."""
        with self._lock:
            rows = self._db.execute("SELECT id, provider, url FROM subscriptions ORDER BY rowid").fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def cursor(self, subscription: str) -> int:
        """The feed position caught up to (``advance``): where catching up starts again."""
        with self._lock:
            row = self._db.execute(
                "SELECT cursor FROM subscriptions WHERE id = ?", (subscription,)
            ).fetchone()
        return int(row[0]) if row else 0

    def advance(self, subscription: str, position: int) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE subscriptions SET cursor = MAX(cursor, ?) WHERE id = ?", (position, subscription)
            )
