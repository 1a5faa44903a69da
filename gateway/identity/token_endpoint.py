"""``POST /connect/token``: an iSHARE client_credentials request checked end to end.

Form (RFC 6749 §4.4, RFC 7523 §2.2, iSHARE): ``grant_type=client_credentials``,
``client_id``, ``client_assertion_type`` (jwt-bearer), ``client_assertion`` and an
optional ``scope``: when given it must contain ``iSHARE``; when omitted it is
``iSHARE`` (RFC 6749 §3.3 lets a server apply a default scope; docs/ishare.md says
why). The assertion is verified (signature, claims), its chain must end in a CA on the
registry's trusted list, the party must be active, its registered certificate must be
the one that signed, and its ``jti`` must be new. Shared by nodes and the registry;
only where the parties and trusted CAs come from differs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import parse_qsl

from gateway.errors import InvalidClient, InvalidRequest, InvalidScope, UnsupportedGrantType
from gateway.identity.assertions import ASSERTION_TYPE, LEEWAY, Assertion, verify_assertion
from gateway.identity.parties import Party, TrustedCA
from gateway.identity.pki import fingerprint
from gateway.identity.replay import ReplayCache

__all__ = ["MAX_FORM", "TrustSource", "authenticate_client", "parse_form"]

MAX_FORM = 32 * 1024
_FIELDS = ("grant_type", "client_id", "client_assertion_type", "client_assertion")
DEFAULT_SCOPE = "iSHARE"


class TrustSource(Protocol):
    async def party(self, party_id: str) -> Party | None: ...

    async def trusted(self) -> list[TrustedCA]: ...


def parse_form(content_type: str | None, body: bytes) -> dict[str, str]:
    """The token request's form; ``InvalidRequest`` for anything else (RFC 6749 §3.2)."""
    if (content_type or "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise InvalidRequest(
            "the token request must be application/x-www-form-urlencoded", reason="form_content_type"
        )
    if len(body) > MAX_FORM:
        raise InvalidRequest(f"the token request is larger than {MAX_FORM} bytes", reason="form_too_large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the token request body is not a valid form", reason="form_malformed") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidRequest(f"parameter {name!r} is repeated", reason="parameter_repeated")
        form[name] = value
    return form


async def authenticate_client(
    form: Mapping[str, str], *, me: str, trust: TrustSource, replay: ReplayCache, now: float
) -> tuple[Assertion, Party]:
    _check_form(form)
    client_id = form["client_id"]
    trusted = [ca.fingerprint for ca in await trust.trusted() if ca.usable]
    assertion = verify_assertion(
        form["client_assertion"], client_id=client_id, audience=me, trusted=trusted, now=now
    )
    party = await trust.party(client_id)
    if party is None:
        raise InvalidClient(f"{client_id} is not a participant in the registry", reason="party_unknown")
    inactive = party.active_at(dt.datetime.fromtimestamp(now, dt.UTC))
    if inactive:
        raise InvalidClient(inactive, reason="party_not_active")
    if fingerprint(assertion.chain[0]) not in party.certificates:
        raise InvalidClient(
            f"the signing certificate is not the one registered for {client_id}",
            reason="certificate_not_registered",
        )
    if not await replay.first_use(f"{client_id}:{assertion.jti}", assertion.expires - now + LEEWAY):
        raise InvalidClient(
            "this assertion (jti) has been used before; make a new one per request", reason="jti_replayed"
        )
    return assertion, party


def _check_form(form: Mapping[str, str]) -> None:
    """RFC 6749 §4.4 and RFC 7523 §2.2: the parameters, before the assertion is read."""
    for name in _FIELDS:
        if not form.get(name):
            raise InvalidRequest(f"the {name} parameter is missing", reason="parameter_missing")
    if form["grant_type"] != "client_credentials":
        raise UnsupportedGrantType(
            f"grant_type {form['grant_type']!r} is not supported; use client_credentials"
        )
    if DEFAULT_SCOPE not in form.get("scope", DEFAULT_SCOPE).split():
        raise InvalidScope("scope must include iSHARE")
    if form["client_assertion_type"] != ASSERTION_TYPE:
        raise InvalidRequest(f"client_assertion_type must be {ASSERTION_TYPE}", reason="assertion_type_wrong")
