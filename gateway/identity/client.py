"""Outbound identity: getting and reusing access tokens from other iSHARE parties.

A fresh client assertion is minted for every token request (audience = the target
party), and each access token is reused for that target until shortly before it
expires. A token is only ever sent to the base URL it was obtained from.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from gateway.errors import UpstreamError
from gateway.identity.assertions import ASSERTION_TYPE, make_assertion
from gateway.identity.pki import Identity

__all__ = ["TokenClient"]

_MARGIN = 60  # renew this many seconds before expiry


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    renew_at: float


class TokenClient:
    def __init__(
        self, identity: Identity, http: httpx.AsyncClient, clock: Callable[[], float] = time.time
    ) -> None:
        self.identity = identity
        self.http = http
        self.clock = clock
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def token(self, party_id: str, base_url: str) -> str:
        """An access token for ``party_id`` at ``base_url``, from cache or newly obtained."""
        key = (party_id, base_url.rstrip("/"))
        cached = self._tokens.get(key)
        if cached is not None and self.clock() < cached.renew_at:
            return cached.value
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and self.clock() < cached.renew_at:
                return cached.value
            token = await self._request(party_id, key[1])
            self._tokens[key] = token
            return token.value

    def forget(self, party_id: str, base_url: str) -> None:
        """Drop a token the target refused, so the next call obtains a new one."""
        self._tokens.pop((party_id, base_url.rstrip("/")), None)

    async def _request(self, party_id: str, base_url: str) -> _Token:
        now = self.clock()
        form = {
            "grant_type": "client_credentials",
            "scope": "iSHARE",
            "client_id": self.identity.party_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": make_assertion(self.identity, party_id, now),
        }
        url = base_url + "/connect/token"
        try:
            answer = await self.http.post(url, data=form)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{party_id} at {url} cannot be reached ({type(exc).__name__})") from None
        if answer.status_code != 200:
            reason = _reason(answer)
            raise UpstreamError(f"{party_id} at {url} refused a token: {answer.status_code} {reason}")
        try:
            body = answer.json()
            value, lifetime = body["access_token"], float(body.get("expires_in", 3600))
            if not isinstance(value, str) or body.get("token_type", "").lower() != "bearer":
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise UpstreamError(
                f"{party_id} at {url} answered a token request with no usable token"
            ) from None
        return _Token(value, now + max(lifetime - _MARGIN, lifetime / 2))


def _reason(answer: httpx.Response) -> str:
    try:
        body = answer.json()
        return (
            str(body.get("error") or body.get("code") or "")
            + ": "
            + str(body.get("error_description") or body.get("detail") or "")
        )
    except ValueError:
        return answer.text[:200]
