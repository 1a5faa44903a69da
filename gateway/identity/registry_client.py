"""The node's view of the participant registry (an iSHARE satellite).

Answers are signed JWTs (``parties_token``, ``party_token``, ``trusted_list_token``),
verified by ``trust.verify_signed``: the signing certificate's chain must end in a CA
the node pins in its configuration (``registry.ca``), the certificate must name the
registry and, where the node also pins the registry's own certificates
(``registry.certificates``), be one of them, so that a certificate merely naming the
registry is never believed; then ``iss`` = the registry, ``aud`` = this node and
``exp = iat + 30``.

A registry that hangs is a registry that failed: one look-up (token and answer) may take
``timeout`` seconds (default 2, well inside a query's budget). Answers are cached and
served stale-while-revalidate (RFC 5861 §3's idea): younger than ``refresh`` they serve
as they are; older, but younger than ``lifetime``, they still serve at once while one
background request per answer renews them; only a missing or expired answer is waited
for, and callers asking for the same answer at once share one request. Without a usable
answer the node fails closed with ``RegistryUnavailable``. ``state()`` tells ``/health``
and the federation report.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from gateway.errors import RegistryUnavailable, UpstreamError
from gateway.identity import jwt
from gateway.identity.client import TokenClient
from gateway.identity.parties import Party, TrustedCA, parse_party, parse_trusted_list
from gateway.identity.pki import fingerprint
from gateway.identity.trust import check_audience, check_lifetime, normalise_fingerprint, verify_signed

__all__ = ["RegistryClient", "verify_answer"]

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
        timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
        pins: Iterable[str] = (),
    ) -> None:
        self.url = url.rstrip("/")
        self.registry_id = registry_id
        self.anchors = [normalise_fingerprint(a) for a in anchors]
        #: fingerprints of the registry's own certificates; empty: any the CAs vouch for
        self.pins = frozenset(normalise_fingerprint(p) for p in pins)
        self.tokens = tokens
        self.refresh, self.lifetime, self.timeout, self.clock = refresh, lifetime, timeout, clock
        self._cache: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Task[Any]] = {}
        self._failure: tuple[float, str] | None = None  # (when, why) of the last failed look-up

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

    def state(self) -> dict[str, Any]:
        """``ok`` while the registry answers; ``degraded`` while it fails but cached
        answers still serve; ``failing`` when none does (new callers are refused)."""
        if self._failure is None:
            return {"status": "ok", "url": self.url}
        at, why = self._failure
        now = self.clock()
        serving = any(now - e.fetched < self.lifetime for e in self._cache.values())
        status = "degraded" if serving else "failing"
        return {"status": status, "url": self.url, "error": why, "since": _iso(at), "serving_cached": serving}

    def check(self) -> None:
        """Renew the trusted list in the background if it is due (``/health`` calls this,
        so that its answer follows the registry without waiting on it). A registry the
        node has not needed yet is not asked."""
        entry = self._cache.get("trusted_list")
        if entry is not None and self.clock() - entry.fetched >= self.refresh:
            self._start("trusted_list", self._fetch_trusted)

    async def aclose(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    async def _cached(self, key: str, fetch: Callable[[], Any]) -> Any:
        entry = self._cache.get(key)
        age = self.clock() - entry.fetched if entry is not None else None
        if entry is not None and age is not None and age < self.lifetime:
            if age >= self.refresh:
                self._start(key, fetch)  # stale: renewed in the background, served now
            return entry.value
        return await asyncio.shield(self._start(key, fetch))

    def _start(self, key: str, fetch: Callable[[], Any]) -> asyncio.Task[Any]:
        """The one request for ``key`` under way, started if there is none."""
        task = self._inflight.get(key)
        if task is None:
            task = self._inflight[key] = asyncio.get_running_loop().create_task(self._fetch(key, fetch))
            task.add_done_callback(lambda t: self._done(key, t))
        return task

    def _done(self, key: str, task: asyncio.Task[Any]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: a background renewal that failed is in state()

    async def _fetch(self, key: str, fetch: Callable[[], Any]) -> Any:
        try:
            value = await asyncio.wait_for(fetch(), self.timeout)
        except (UpstreamError, TimeoutError) as exc:
            why = exc.detail if isinstance(exc, UpstreamError) else f"no answer within {self.timeout:g} s"
            if self._failure is None:
                log.warning("the participant registry at %s fails (%s); cached answers serve", self.url, why)
            self._failure = (self.clock(), why)
            raise self._unavailable(why) from None
        if self._failure is not None:
            log.warning("the participant registry at %s answers again", self.url)
        self._failure = None
        self._cache[key] = _Entry(value, self.clock())
        return value

    def _unavailable(self, why: str) -> RegistryUnavailable:
        return RegistryUnavailable(
            f"the participant registry cannot be reached ({why}) and no answer younger than "
            f"registry.lifetime ({self.lifetime:g} s) is cached"
        )

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
        return verify_answer(
            token,
            what,
            registry=self.registry_id,
            me=self.me,
            anchors=self.anchors,
            pins=self.pins,
            now=self.clock(),
        )

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
            data = _listed(claims["parties_info"], f"entry for {party_id}")
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
            data = _listed(info, "party list")
            try:
                out.extend(parse_party(p) for p in data)
            except ValueError as exc:
                raise UpstreamError(f"the registry's party list is malformed: {exc}") from None
            count = info.get("count")
            if not data or not isinstance(count, int) or len(out) >= count:
                break
        return out


def _listed(info: Any, what: str) -> list[Any]:
    """The ``data`` array of a ``parties_info`` object (absent: none). Any other shape is
    the registry's fault and fails closed, like every malformed answer, not as a 500."""
    data = info.get("data") if isinstance(info, dict) else None
    if not isinstance(info, dict) or not isinstance(data, list | None):
        raise UpstreamError(
            f"the registry's {what} is malformed: parties_info is no object with a data array"
        )
    return data or []


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def verify_answer(
    token: str,
    what: str,
    *,
    registry: str,
    me: str,
    anchors: Collection[str],
    pins: Collection[str],
    now: float,
) -> dict[str, Any]:
    """The claims of a registry answer (to ``what``), once it is shown to be the
    registry's: chained to ``anchors``, signed by a certificate naming ``registry`` (and
    one of ``pins`` when there are any), for ``me``, 30 seconds long and current. Else
    ``UpstreamError`` with the reason."""

    def fail(reason: str, detail: str) -> UpstreamError:
        return UpstreamError(f"the registry's answer to {what} is not trustworthy: {detail}", reason=reason)

    signed = verify_signed(token, trusted=anchors, now=now, fail=fail, limit=jwt.MAX_ANSWER)
    if signed.signer != registry:
        raise fail("signer_not_registry", f"it is signed by {signed.signer}, not by the registry")
    if pins and fingerprint(signed.chain[0]) not in pins:
        raise fail("certificate_not_pinned", "it is not signed with a certificate pinned for the registry")
    check_audience(signed.claims, (me,), fail)
    check_lifetime(signed.claims, now, fail)
    return signed.claims
