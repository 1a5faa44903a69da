"""The durable outbox: subscriptions, the changes they matched, the notifications to send.

One SQLite file (WAL, ``synchronous=FULL``: a committed notification survives a crash of
the process or of the machine). A notification is written, signed and numbered in the
same transaction as the change that made it, so a node killed with a full outbox sends
every one of them after a restart, once each: its ``id`` is derived from the
subscription and the change (``gateway.notify.message.notification_id``), and a change
read twice (a crash between writing the outbox and switching the source) finds its
notifications already there. Positions count each subscription's notifications 1, 2, 3,
... with no gaps: the replay feed's cursor.

States: ``pending`` (to be sent; only the lowest pending position of a subscription is
tried, so a receiver gets them in order), ``delivered``, ``withdrawn`` (the policy no
longer lets the subscriber read what it says, so it is never sent nor replayed).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gateway.errors import InvalidSubscription
from gateway.notify.subscription import Subscription, never, topic_of
from gateway.vocab import Vocab

__all__ = ["Draft", "Outbox", "Pending"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS subscriptions (id TEXT PRIMARY KEY, consumer TEXT NOT NULL,"
    " document TEXT NOT NULL, roles TEXT NOT NULL DEFAULT '[]', status TEXT NOT NULL DEFAULT 'active',"
    " reason TEXT NOT NULL DEFAULT '', next_position INTEGER NOT NULL DEFAULT 1, failing_since REAL)",
    "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, subject TEXT NOT NULL,"
    " before TEXT NOT NULL, after TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS notifications (id TEXT PRIMARY KEY, subscription TEXT NOT NULL,"
    " position INTEGER NOT NULL, event TEXT NOT NULL, body BLOB NOT NULL, signature TEXT NOT NULL,"
    " fields TEXT NOT NULL, kind TEXT NOT NULL, grant_key TEXT NOT NULL, rules TEXT NOT NULL,"
    " purpose TEXT NOT NULL, withheld INTEGER NOT NULL, state TEXT NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL, last_error TEXT NOT NULL DEFAULT '',"
    " created REAL NOT NULL, delivered REAL, UNIQUE (subscription, position))",
    "CREATE INDEX IF NOT EXISTS by_state ON notifications (state, subscription, position)",
)
_COLUMNS = "id, subscription, position, event, body, signature, fields, kind, grant_key, rules, purpose,"
_COLUMNS += " withheld, state, attempts"


@dataclass(frozen=True, slots=True)
class Draft:
    """A notification decided, not yet numbered: ``Outbox.enqueue`` numbers and signs it."""

    id: str
    subscription: str
    event: str
    kind: str
    fields: tuple[str, ...]
    grant_key: str
    rules: tuple[str, ...]
    purpose: str
    withheld: int
    #: what ``render`` needs besides the position
    extra: Any = None


@dataclass(frozen=True, slots=True)
class Pending:
    """A stored notification."""

    id: str
    subscription: str
    position: int
    event: str
    body: bytes
    signature: str
    fields: tuple[str, ...]
    kind: str
    grant_key: str
    rules: tuple[str, ...]
    purpose: str
    withheld: int
    state: str
    attempts: int


def _pending(row: Sequence[Any]) -> Pending:
    return Pending(
        row[0],
        row[1],
        row[2],
        row[3],
        bytes(row[4]),
        row[5],
        tuple(orjson.loads(row[6])),
        row[7],
        row[8],
        tuple(orjson.loads(row[9])),
        row[10],
        row[11],
        row[12],
        row[13],
    )


#: numbers and signs a draft: (the body at that position, its detached signature)
Render = Callable[[Draft, int], tuple[bytes, str]]


def _insert(db: sqlite3.Connection, draft: Draft, render: Render, now: float) -> int:
    """Number, sign and store one draft unless it is there already: 1 if stored."""
    if db.execute("SELECT 1 FROM notifications WHERE id = ?", (draft.id,)).fetchone():
        return 0
    row = db.execute(
        "UPDATE subscriptions SET next_position = next_position + 1 WHERE id = ? RETURNING next_position - 1",
        (draft.subscription,),
    ).fetchone()
    if row is None:
        return 0  # deleted meanwhile
    body, signature = render(draft, row[0])
    values: tuple[Any, ...] = (
        draft.id,
        draft.subscription,
        row[0],
        draft.event,
        body,
        signature,
        orjson.dumps(list(draft.fields)),
    )
    values += (
        draft.kind,
        draft.grant_key,
        orjson.dumps(list(draft.rules)),
        draft.purpose,
        draft.withheld,
        now,
    )
    db.execute(
        "INSERT INTO notifications (id, subscription, position, event, body, signature, fields, kind,"
        " grant_key, rules, purpose, withheld, state, next_attempt, created)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)",
        values,
    )
    return 1


class Outbox:
    """Thread-safe (one connection, one lock): the source watcher writes from its worker
    thread, the delivery task and the routes from theirs."""

    def __init__(self, path: Path, vocab: Vocab) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.vocab = path, vocab
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")  # other worker processes of the node
        self._lock = threading.Lock()
        #: subscriptions as parsed, by id, with the row they were parsed from: a change
        #: is matched against every subscription, and a topic compiles regular expressions
        self._parsed: dict[str, tuple[tuple[Any, ...], Subscription]] = {}
        for statement in _SCHEMA:
            self._db.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, statements: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = statements(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- subscriptions -----------------------------------------------------------------

    def add(self, sub: Subscription, roles: Sequence[str]) -> None:
        document = {
            "provider": sub.provider_id,
            "event_types": sub.event_types,
            "webhook_url": sub.webhook_url,
            "webhook_path": sub.webhook_path,
            "created": sub.created,
            "start": sub.start,
            "end": sub.end,
            "description": sub.description,
            "topic": sub.topic.raw,
            "watched": None if sub.topic.watched is None else sorted(sub.topic.watched),
        }
        text = orjson.dumps(document)
        self._write(
            lambda db: db.execute(
                "INSERT INTO subscriptions (id, consumer, document, roles) VALUES (?, ?, ?, ?)",
                (sub.id, sub.consumer_id, text, orjson.dumps(list(roles))),
            )
        )
        self._parsed[sub.id] = ((sub.consumer_id, text, "active", ""), sub)

    def _subscription(self, row: Sequence[Any]) -> Subscription:
        key = (row[1], row[2], row[4], row[5])
        known = self._parsed.get(row[0])
        if known is not None and known[0] == key:
            return known[1]
        sub = self._parse(row)
        self._parsed[row[0]] = (key, sub)
        return sub

    def _parse(self, row: Sequence[Any]) -> Subscription:
        doc = orjson.loads(row[2])
        status, reason = row[4], row[5]
        try:
            topic = topic_of(doc["topic"], doc["watched"], self.vocab)
        except InvalidSubscription as exc:  # the vocabulary changed under it: never matches
            topic, status, reason = never(doc["topic"]), "inactive", exc.detail
        return Subscription(
            row[0],
            row[1],
            doc["provider"],
            tuple(doc["event_types"]),
            doc["webhook_url"],
            doc["webhook_path"],
            doc["created"],
            doc["start"],
            doc["end"],
            doc["description"],
            topic,
            status,
            reason,
        )

    def get(self, sub_id: str) -> Subscription | None:
        rows = self._read(
            "SELECT id, consumer, document, roles, status, reason FROM subscriptions WHERE id = ?", (sub_id,)
        )
        return self._subscription(rows[0]) if rows else None

    def of(self, consumer: str) -> list[Subscription]:
        rows = self._read(
            "SELECT id, consumer, document, roles, status, reason FROM subscriptions WHERE consumer = ?"
            " ORDER BY rowid",
            (consumer,),
        )
        return [self._subscription(r) for r in rows]

    def active(self) -> list[tuple[Subscription, tuple[str, ...]]]:
        """Subscriptions not deactivated (expiry is the caller's to check), with the
        registry roles their subscriber had when last looked up."""
        rows = self._read(
            "SELECT id, consumer, document, roles, status, reason FROM subscriptions WHERE status = 'active'"
            " ORDER BY rowid"
        )
        return [(self._subscription(r), tuple(orjson.loads(r[3]))) for r in rows]

    def roles(self, sub_id: str, roles: Sequence[str]) -> None:
        self._write(
            lambda db: db.execute(
                "UPDATE subscriptions SET roles = ? WHERE id = ?", (orjson.dumps(sorted(roles)), sub_id)
            )
        )

    def delete(self, sub_id: str) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM notifications WHERE subscription = ?", (sub_id,))
            db.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,))

        self._write(run)
        self._parsed.pop(sub_id, None)

    def deactivate(self, sub_id: str, reason: str) -> None:
        self._write(
            lambda db: db.execute(
                "UPDATE subscriptions SET status = 'inactive', reason = ? WHERE id = ?", (reason, sub_id)
            )
        )

    # -- notifications ------------------------------------------------------------------

    def enqueue(
        self,
        events: Sequence[tuple[str, str, str, str, float]],
        drafts: Sequence[Draft],
        render: Render,
        now: float,
    ) -> int:
        """Store the changes (id, subject, before, after as N-Triples, time) and number,
        sign and store their notifications, in one transaction. Notifications already
        there (the same change read again) are left as they are. Returns how many are new."""

        def run(db: sqlite3.Connection) -> int:
            db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?)", events)
            return sum(_insert(db, draft, render, now) for draft in drafts)

        result: int = self._write(run)
        return result

    def event(self, event_id: str) -> tuple[str, str, str] | None:
        """(subject, before, after) of a stored change, as N-Triples."""
        rows = self._read("SELECT subject, before, after FROM events WHERE id = ?", (event_id,))
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def due(self, now: float, limit: int = 64) -> list[Pending]:
        """The first pending notification of each active subscription, if it is due."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM notifications AS n"  # noqa: S608 (constants)
            " WHERE n.state = 'pending' AND n.next_attempt <= ? AND n.position = (SELECT MIN(position)"
            " FROM notifications WHERE subscription = n.subscription AND state = 'pending')"
            " AND n.subscription IN (SELECT id FROM subscriptions WHERE status = 'active')"
            " ORDER BY n.next_attempt, n.created LIMIT ?",
            (now, limit),
        )
        return [_pending(r) for r in rows]

    def next_due(self) -> float | None:
        rows = self._read(
            "SELECT MIN(next_attempt) FROM notifications WHERE state = 'pending'"
            " AND subscription IN (SELECT id FROM subscriptions WHERE status = 'active')"
        )
        return rows[0][0] if rows and rows[0][0] is not None else None

    def delivered(self, pendings: Sequence[Pending], now: float) -> None:
        """Mark notifications delivered, in one transaction (one sync to disk a batch)."""

        def run(db: sqlite3.Connection) -> None:
            db.executemany(
                "UPDATE notifications SET state = 'delivered', delivered = ?, attempts = attempts + 1"
                " WHERE id = ?",
                [(now, p.id) for p in pendings],
            )
            db.executemany(
                "UPDATE subscriptions SET failing_since = NULL WHERE id = ?",
                [(s,) for s in sorted({p.subscription for p in pendings})],
            )

        if pendings:
            self._write(run)

    def failed(self, pending: Pending, now: float, retry_at: float, error: str) -> float:
        """Record a failed attempt; returns since when the subscription's deliveries fail."""

        def run(db: sqlite3.Connection) -> float:
            db.execute(
                "UPDATE notifications SET attempts = attempts + 1, next_attempt = ?, last_error = ?"
                " WHERE id = ?",
                (retry_at, error[:500], pending.id),
            )
            row = db.execute(
                "UPDATE subscriptions SET failing_since = COALESCE(failing_since, ?) WHERE id = ?"
                " RETURNING failing_since",
                (now, pending.subscription),
            ).fetchone()
            return float(row[0]) if row else now

        since: float = self._write(run)
        return since

    def withdraw(self, pending: Pending) -> None:
        self._write(
            lambda db: db.execute("UPDATE notifications SET state = 'withdrawn' WHERE id = ?", (pending.id,))
        )

    def feed(self, sub_id: str, since: int, limit: int) -> list[Pending]:
        rows = self._read(
            f"SELECT {_COLUMNS} FROM notifications WHERE subscription = ? AND position > ?"  # noqa: S608
            " ORDER BY position LIMIT ?",
            (sub_id, since, limit),
        )
        return [_pending(r) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self._read("SELECT state, COUNT(*) FROM notifications GROUP BY state")
        counts = {"pending": 0, "delivered": 0, "withdrawn": 0}
        counts.update({state: n for state, n in rows})
        subs = self._read("SELECT status, COUNT(*) FROM subscriptions GROUP BY status")
        counts["subscriptions"] = sum(n for _, n in subs)
        counts["inactive"] = sum(n for s, n in subs if s != "active")
        return counts
