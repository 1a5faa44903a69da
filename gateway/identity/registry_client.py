"""The node's view of the participant registry (an iSHARE satellite).

Answers are signed JWTs (``parties_token``, ``party_token``, ``trusted_list_token``):
each is verified against the registry's certificate, whose chain must end in a CA the
node pins in its configuration, with ``iss`` = the registry, ``aud`` = this node and
``exp = iat + 30``. Answers are cached: refreshed after ``refresh`` seconds, and while
the registry is down the cached answer serves until ``lifetime`` seconds after it was
fetched; then the node refuses (fails closed) with ``TemporarilyUnavailable``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.errors import TemporarilyUnavailable, UpstreamError
from gateway.identity import jwt
from gateway.identity.client import TokenClient
from gateway.identity.parties import Party, TrustedCA, parse_party, parse_trusted_list
from gateway.identity.pki import party_id_of
from gateway.identity.trust import check_chain, normalise_fingerprint, parse_x5c

__all__ = ["RegistryClient"]

log = logging.getLogger("dsgo.registry")
_MAX_PAGES = 1000  # 10,000 parties: a bound, so a registry cannot keep a node paging forever


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Any
    fetched: float


class RegistryClient:
    def __init__(
        self,
        url: str,
        registry_id: str,
        anchors: Iterable[str],
        tokens: TokenClient,
        *,
        refresh: float = 60,
        lifetime: float = 600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self.registry_id = registry_id
        self.anchors = [normalise_fingerprint(a) for a in anchors]
        self.tokens = tokens
        self.refresh, self.lifetime, self.clock = refresh, lifetime, clock
        self._cache: dict[str, _Entry] = {}

    @property
    def me(self) -> str:
        return self.tokens.identity.party_id

    async def trusted(self) -> list[TrustedCA]:
        value: list[TrustedCA] = await self._cached("trusted_list", self._fetch_trusted)
        return value

    async def party(self, party_id: str) -> Party | None:
        value: Party | None = await self._cached(f"party:{party_id}", lambda: self._fetch_party(party_id))
        return value

    async def parties(self) -> list[Party]:
        """Every active party (for namespace look-ups by the federation)."""
        value: list[Party] = await self._cached("parties", self._fetch_parties)
        return value

    async def _cached(self, key: str, fetch: Callable[[], Any]) -> Any:
        now = self.clock()
        entry = self._cache.get(key)
        if entry is not None and now - entry.fetched < self.refresh:
            return entry.value
        try:
            value = await fetch()
        except UpstreamError as exc:
            if entry is not None and now - entry.fetched < self.lifetime:
                log.warning("registry unreachable, serving a cached answer: %s", exc.detail)
                return entry.value
            raise TemporarilyUnavailable(
                f"the participant registry cannot be reached and no recent answer is cached ({exc.detail})"
            ) from None
        self._cache[key] = _Entry(value, now)
        return value

    async def _get(self, path: str, claim: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        for attempt in (1, 2):
            token = await self.tokens.token(self.registry_id, self.url)
            try:
                answer = await self.tokens.http.get(
                    self.url + path, params=params, headers={"authorization": f"Bearer {token}"}
                )
            except httpx.HTTPError as exc:
                raise UpstreamError(
                    f"the registry at {self.url} cannot be reached ({type(exc).__name__})"
                ) from None
            if answer.status_code != 401 or attempt == 2:
                break
            self.tokens.forget(self.registry_id, self.url)  # expired or revoked: get a new one
        if answer.status_code == 404:
            return {}
        if answer.status_code != 200:
            raise UpstreamError(f"the registry answered {path} with status {answer.status_code}")
        try:
            token_value = answer.json()[claim]
        except (ValueError, KeyError, TypeError):
            raise UpstreamError(f"the registry's answer to {path} has no {claim}") from None
        return self._verify(token_value, path)

    def _verify(self, token: str, what: str) -> dict[str, Any]:
        def fail(reason: str) -> UpstreamError:
            return UpstreamError(f"the registry's answer to {what} is not trustworthy: {reason}")

        header = jwt.peek_header(token, fail, jwt.MAX_ANSWER)
        chain = parse_x5c(header.get("x5c"), fail)
        now = self.clock()
        check_chain(chain, self.anchors, dt.datetime.fromtimestamp(now, dt.UTC), fail)
        if party_id_of(chain[0]) != self.registry_id:
            raise fail("it is not signed by the registry's certificate")
        key = chain[0].public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        claims = jwt.verify(token, key, fail)
        if claims.get("iss") != self.registry_id or claims.get("aud") != self.me:
            raise fail("iss or aud are wrong")
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int | float) or not isinstance(exp, int | float) or exp - iat != 30:
            raise fail("iat and exp must be numbers with exp = iat + 30")
        if exp < now - 10 or iat > now + 10:
            raise fail("it has expired or is not valid yet")
        return claims

    async def _fetch_trusted(self) -> list[TrustedCA]:
        claims = await self._get("/trusted_list", "trusted_list_token")
        try:
            return parse_trusted_list(claims.get("trusted_list"))
        except ValueError as exc:
            raise UpstreamError(f"the registry's trusted list is malformed: {exc}") from None

    async def _fetch_party(self, party_id: str) -> Party | None:
        claims = await self._get(f"/parties/{quote(party_id, safe=':')}", "party_token")
        if not claims:
            return None
        info = claims.get("party_info") or claims.get("partyInfo")
        if info is None and "parties_info" in claims:
            data = claims["parties_info"].get("data") or []
            info = data[0] if data else None
        if info is None:
            return None
        try:
            return parse_party(info)
        except ValueError as exc:
            raise UpstreamError(f"the registry's entry for {party_id} is malformed: {exc}") from None

    async def _fetch_parties(self) -> list[Party]:
        """Every page of ``/parties`` (iSHARE v2 answers 10 per page; ``count`` is all)."""
        out: list[Party] = []
        for page in range(1, _MAX_PAGES + 1):
            params = {"active_only": "true", "page": str(page)}
            claims = await self._get("/parties", "parties_token", params)
            info = claims.get("parties_info") or claims.get("partiesInfo") or {}
            data = info.get("data") or []
            try:
                out.extend(parse_party(p) for p in data)
            except ValueError as exc:
                raise UpstreamError(f"the registry's party list is malformed: {exc}") from None
            count = info.get("count")
            if not data or not isinstance(count, int) or len(out) >= count:
                break
        return out
