"""Workbench sessions and login throttling, shared by a node's workers through one SQLite file.

A session is a random id, kept server-side with its user, CSRF token and expiry (so a
logout or a removed account ends it at once, in every worker), and sent to the browser
signed (``itsdangerous``, HMAC-SHA256 with a key derived from the node's private key, so
every worker of the node checks it alike and nobody else can make one). The cookie is
``HttpOnly`` and ``SameSite=Strict`` (``Secure`` over https): no script reads it and no
other site's page sends it (RFC 6265bis §5.4.7).

Failed logins are counted per user name and per client address in a sliding window
(OWASP Authentication Cheat Sheet: throttle, do not lock out): more than
``MAX_PER_USER`` (or ``MAX_PER_CLIENT``) failures in ``WINDOW`` seconds and further
attempts wait until the oldest failure leaves the window.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import itsdangerous
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.errors import ConfigError

__all__ = ["MAX_PER_CLIENT", "MAX_PER_USER", "WINDOW", "Session", "Sessions", "credential_of", "session_key"]

WINDOW = 900.0
MAX_PER_USER, MAX_PER_CLIENT = 5, 20
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, username TEXT NOT NULL, credential TEXT NOT NULL, csrf TEXT NOT NULL,
    created REAL NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (username);
CREATE TABLE IF NOT EXISTS failures (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS failures_key ON failures (key, at);
"""


def session_key(private_key: PrivateKeyTypes, party_id: str) -> bytes:
    """The cookie-signing key: HKDF-SHA256 (RFC 5869) of the node's private key."""
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    info = b"dsgo workbench session cookies " + party_id.encode()
    return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(der)


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    username: str
    #: which password the session was opened with: a reset or re-made account ends it
    credential: str
    csrf: str
    expires: float


class _Signer(itsdangerous.TimestampSigner):
    """itsdangerous' timestamp signer on the node's clock (tests move it)."""

    clock: Callable[[], float] = time.time

    def get_timestamp(self) -> int:
        return int(self.clock())


class Sessions:
    def __init__(
        self, path: Path, key: bytes, lifetime: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.lifetime, self.clock = lifetime, clock
        self._signer = _Signer(key, salt="dsgo-workbench-session", digest_method=hashlib.sha256)
        self._signer.clock = clock
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:  # a read-only folder: the node does not start
            raise ConfigError(
                path,
                "",
                f"the workbench's sessions cannot be kept here ({exc}); they live beside "
                "[workbench] accounts (DSGO_WORKBENCH_ACCOUNTS): point it at a writable folder",
            ) from None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    # -- sessions -------------------------------------------------------------------------

    def create(self, username: str, credential: str) -> tuple[str, Session]:
        """A new session for ``username``: the signed cookie value and the session."""
        now = self.clock()
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        session = Session(sid, username, credential, csrf, now + self.lifetime)
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
            self._db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                (_digest(session.id), username, credential, session.csrf, now, session.expires),
            )
        return self._signer.sign(session.id).decode(), session

    def get(self, cookie: str | None) -> Session | None:
        """The live session a cookie names; None if unsigned, expired, ended or unknown."""
        if not cookie:
            return None
        try:
            sid = self._signer.unsign(cookie, max_age=int(self.lifetime)).decode()
        except itsdangerous.BadData:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT username, credential, csrf, expires FROM sessions WHERE id = ?", (_digest(sid),)
            ).fetchone()
        if row is None or row[3] <= self.clock():
            return None
        return Session(sid, *row)

    def end(self, session: Session) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE id = ?", (_digest(session.id),))

    # -- throttling -----------------------------------------------------------------------

    def wait(self, keys: list[str]) -> float:
        """Seconds until another attempt for ``keys`` (user, client) may be tried; 0: now."""
        now = self.clock()
        longest = 0.0
        with self._lock:
            self._db.execute("DELETE FROM failures WHERE at <= ?", (now - WINDOW,))
            for key in keys:
                limit = MAX_PER_USER if key.startswith("user:") else MAX_PER_CLIENT
                rows = self._db.execute(
                    "SELECT at FROM failures WHERE key = ? ORDER BY at DESC LIMIT 1 OFFSET ?",
                    (key, limit - 1),
                ).fetchone()
                if rows is not None:
                    longest = max(longest, rows[0] + WINDOW - now)
        return longest

    def failed(self, keys: list[str]) -> None:
        now = self.clock()
        with self._lock:
            self._db.executemany("INSERT INTO failures VALUES (?, ?)", [(k, now) for k in keys])

    def succeeded(self, keys: list[str]) -> None:
        """A good password clears the user's failures (not the client's)."""
        with self._lock:
            self._db.executemany(
                "DELETE FROM failures WHERE key = ?", [(k,) for k in keys if k.startswith("user:")]
            )


def credential_of(password_hash: str) -> str:
    """A short fingerprint of an account's password hash, kept with its sessions."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


def _digest(sid: str) -> str:
    """Sessions are stored by a hash of their id: a copy of the file opens no session."""
    return hashlib.sha256(sid.encode()).hexdigest()
