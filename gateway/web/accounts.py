"""The workbench's local accounts: one JSON file of the node, passwords hashed with Argon2id.

    {"format": 1, "accounts": {"alice": {"hash": "$argon2id$v=19$m=65536,t=3,p=4$...",
                                         "roles": ["operator"], "name": "Alice"}}}

Hashes are Argon2id (RFC 9106) from ``argon2-cffi``; new ones use its RFC 9106
low-memory profile (64 MiB, 3 passes). A file holding any other hash, or an Argon2 hash
weaker than OWASP's minimum (19 MiB, 2 passes), is refused when read: the node does not
start and ``dsgo user`` says which account to reset. The file is written atomically and
readable by its owner only. ``dsgo user add|remove|list`` manages it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.errors import ConfigError

__all__ = [
    "ROLES",
    "Account",
    "Accounts",
    "add_account",
    "hasher",
    "load_accounts",
    "remove_account",
]

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: what an account may do besides reading: ``operator`` sees policies and the audit log
ROLES = frozenset({"operator"})
MIN_PASSWORD = 10
#: OWASP's minimum for Argon2id (Password Storage Cheat Sheet): 19 MiB, 2 iterations
_MIN_MEMORY_KIB, _MIN_TIME = 19 * 1024, 2
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    hash: str
    roles: frozenset[str] = frozenset()
    name: str = ""

    @property
    def operator(self) -> bool:
        return "operator" in self.roles


def hasher() -> argon2.PasswordHasher:
    """Argon2id with RFC 9106's low-memory profile (64 MiB, t=3, p=4)."""
    return argon2.PasswordHasher.from_parameters(argon2.profiles.RFC_9106_LOW_MEMORY)


def _check_hash(file: Path, username: str, value: Any) -> str:
    where = f"accounts.{username}.hash"
    if not isinstance(value, str) or not value.startswith("$argon2id$"):
        raise ConfigError(file, where, "not an Argon2id hash; reset it with `dsgo user add --force`")
    try:
        params = argon2.extract_parameters(value)
    except InvalidHashError:
        raise ConfigError(
            file, where, "a malformed Argon2id hash; reset it with `dsgo user add --force`"
        ) from None
    if params.memory_cost < _MIN_MEMORY_KIB or params.time_cost < _MIN_TIME:
        raise ConfigError(
            file,
            where,
            f"a weak Argon2id hash (m={params.memory_cost} KiB, t={params.time_cost}; at least "
            f"m={_MIN_MEMORY_KIB}, t={_MIN_TIME}); reset it with `dsgo user add --force`",
        )
    return value


def _account(file: Path, username: Any, raw: Any) -> Account:
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        raise ConfigError(file, f"accounts.{username}", "a user name of a-z, 0-9, '.', '_', '-'")
    if not isinstance(raw, dict):
        raise ConfigError(file, f"accounts.{username}", "an object with hash, roles and name")
    roles = raw.get("roles", [])
    if not isinstance(roles, list) or not set(roles) <= ROLES:
        raise ConfigError(file, f"accounts.{username}.roles", "a list of: " + ", ".join(sorted(ROLES)))
    name = raw.get("name", "")
    return Account(username, _check_hash(file, username, raw.get("hash")), frozenset(roles), str(name))


@dataclass(frozen=True, slots=True)
class Accounts:
    """The accounts of one file as read at ``stamp`` (size and mtime: re-read on change)."""

    file: Path
    by_name: dict[str, Account]
    stamp: tuple[int, int] = (0, 0)

    def verify(self, username: str, password: str) -> Account | None:
        """The account if the password is its own. An unknown user costs the same hash."""
        account = self.by_name.get(username)
        try:
            hasher().verify(account.hash if account else _dummy_hash(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return account


def _stamp(file: Path) -> tuple[int, int]:
    try:
        st = file.stat()
    except FileNotFoundError:
        return (0, 0)
    return (st.st_size, st.st_mtime_ns)


def load_accounts(file: Path) -> Accounts:
    """The accounts in ``file`` (none if it does not exist yet); ``ConfigError`` if it is wrong."""
    stamp = _stamp(file)
    if stamp == (0, 0):
        return Accounts(file, {}, stamp)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(file, "", f"cannot be read as JSON ({exc})") from None
    if (
        not isinstance(data, dict)
        or data.get("format") != _FORMAT
        or not isinstance(data.get("accounts"), dict)
    ):
        raise ConfigError(file, "", f'expected {{"format": {_FORMAT}, "accounts": {{...}}}}')
    accounts = {name: _account(file, name, raw) for name, raw in data["accounts"].items()}
    return Accounts(file, accounts, stamp)


def _save(file: Path, accounts: dict[str, Account]) -> None:
    """Write atomically (a reader never sees half a file), owner-only permissions."""
    data = {
        "format": _FORMAT,
        "accounts": {
            a.username: {"hash": a.hash, "roles": sorted(a.roles), "name": a.name}
            for a in sorted(accounts.values(), key=lambda a: a.username)
        },
    }
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=file.name + ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_account(
    file: Path,
    username: str,
    password: str,
    roles: frozenset[str] = frozenset(),
    name: str = "",
    *,
    replace: bool = False,
    password_hasher: argon2.PasswordHasher | None = None,
) -> Account:
    """Add (or with ``replace``, reset) an account; ``ConfigError`` for a bad name,
    a short password, an unknown role, or an account that exists."""
    if not USERNAME.fullmatch(username):
        raise ConfigError(file, username, "a user name is 1-64 of a-z, 0-9, '.', '_', '-'")
    if len(password) < MIN_PASSWORD:
        raise ConfigError(file, username, f"the password must have at least {MIN_PASSWORD} characters")
    if not roles <= ROLES:
        raise ConfigError(file, username, "roles are: " + ", ".join(sorted(ROLES)))
    accounts = dict(load_accounts(file).by_name)
    if username in accounts and not replace:
        raise ConfigError(file, username, "the account exists; pass --force to reset it")
    account = Account(username, (password_hasher or hasher()).hash(password), roles, name)
    accounts[username] = account
    _save(file, accounts)
    return account


def remove_account(file: Path, username: str) -> None:
    accounts = dict(load_accounts(file).by_name)
    if accounts.pop(username, None) is None:
        raise ConfigError(file, username, "no such account")
    _save(file, accounts)


@cache
def _dummy_hash() -> str:
    """Verified against when the user name is unknown, so both cases take as long."""
    return hasher().hash("not a password of anyone")
