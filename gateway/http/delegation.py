"""``POST /delegation``: the node's own policies as iSHARE delegation evidence.

As iSHARE's authorization registry answers a delegation mask: HTTP 200 with a
``delegation_token`` the node signs (``iss`` = this node, ``sub`` = the access subject,
``aud`` = the requester, ``exp = iat + 30``) whose ``delegationEvidence`` echoes the
mask with ``Permit`` or ``Deny`` per policy (see ``gateway.policy.delegation``).

- Bearer token required. The node's own party may ask about anyone; any other party
  only about itself (403 otherwise).
- ``policyIssuer`` must be this node: it holds no other party's policies. As the reference
  AR, which answers 404 when it holds no delegation from that issuer, this node answers
  404, saying why. A mask without a ``Permit`` rule is a 400, as in the reference AR.
- An access subject that is not an active participant in the registry may read
  nothing, so every policy is ``Deny``.

``evidence_rules_for`` is the hook for the read paths: the extra permit rules that
delegation evidence gives the caller. iSHARE v2 names its header ``delegation_evidence``
(v3 ``delegationEvidence``); the older ``Delegation-Evidence`` this node used to read is
accepted too (docs/ishare.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable, Collection
from functools import partial
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.config import PARTY_ID
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.http.auth import bearer, json_response
from gateway.http.openapi import Body, Operation, describe, signed_token
from gateway.http.state import node_state
from gateway.identity import jwt
from gateway.policy.delegation import (
    EVIDENCE_HEADER,
    MAX_IDENTIFIERS,
    MAX_POLICIES,
    Policy,
    answer,
    parse_mask,
    permitted,
    rules_from_evidence,
)
from gateway.policy.model import Caller, Grant, Rule

__all__ = ["EVIDENCE_NAMES", "MAX_MASK", "delegation", "evidence_header", "evidence_rules_for"]

MAX_MASK = 64 * 1024
_TOKEN_LIFETIME = 30  # iSHARE: exp = iat + 30


def _strings(limit: int, **extra: Any) -> dict[str, Any]:
    item = {"type": "string", "minLength": 1, **extra}
    return {"type": "array", "minItems": 1, "maxItems": limit, "items": item}


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_RULE = _obj(["effect"], effect={"enum": ["Permit", "Deny"]})
_POLICY = _obj(
    ["target", "rules"],
    target=_obj(
        ["resource", "actions"],
        resource=_obj(
            ["type", "identifiers", "attributes"],
            type={"type": "string", "minLength": 1},
            identifiers=_strings(MAX_IDENTIFIERS),
            attributes=_strings(1000),
        ),
        actions=_strings(20),
        environment=_obj([], serviceProviders=_strings(100)),
    ),
    rules={
        "type": "array",
        "minItems": 1,
        "maxItems": 100,
        "items": _RULE,
        "contains": _obj(["effect"], effect={"const": "Permit"}),
    },
)
#: the iSHARE delegation mask as ``parse_mask`` reads it
_MASK = _obj(
    ["delegationRequest"],
    delegationRequest=_obj(
        ["policyIssuer", "target", "policySets"],
        policyIssuer={"type": "string", "minLength": 1},
        target=_obj(["accessSubject"], accessSubject={"type": "string", "pattern": PARTY_ID.pattern}),
        policySets={
            "type": "array",
            "minItems": 1,
            "maxItems": 10,
            "items": _obj(
                ["policies"],
                policies={"type": "array", "minItems": 1, "maxItems": MAX_POLICIES, "items": _POLICY},
            ),
        },
    ),
)


@describe(
    post=Operation(
        "iSHARE delegation evidence: a delegation mask answered from the node's own policies",
        "As an iSHARE authorization registry: 200 with Permit or Deny per policy, signed.",
        ("iSHARE",),
        body=Body({"application/json": _MASK}),
        replies={200: signed_token("delegation_token", "the signed delegation evidence")},
        errors=(400, 403, 404),
        operation_id="postDelegation",
    )
)
async def delegation(request: Request) -> Response:
    auth = node_state(request).auth
    if auth is None:
        raise NotFound("an open node has no identity to sign delegation evidence with")
    requester = bearer(request).party_id
    node = node_state(request).node
    me = auth.identity.party_id
    mask = parse_mask(await _json(request))
    if mask.policy_issuer != me:
        raise NotFound(
            f"delegationRequest.policyIssuer must be this node's party, {me}: it answers for its own "
            f"policies only; ask the authorization registry that holds {mask.policy_issuer}'s"
        )
    subject = mask.access_subject
    if not PARTY_ID.match(subject):
        raise BadRequest(f"delegationRequest.target.accessSubject {subject!r} is not an iSHARE party id")
    if requester not in (me, subject):
        raise Forbidden(f"only {subject} itself or this node's own party may ask what {subject} may read")
    now = auth.clock()
    party = await auth.trust.party(subject)
    if party is None or party.active_at(dt.datetime.fromtimestamp(now, dt.UTC)) is not None:
        verdict: Callable[[Policy], bool] = _deny  # not an active participant: may read nothing
    else:
        grant = node.access.grant(Caller(subject, frozenset(party.roles)))
        verdict = partial(
            permitted,
            grant=grant,
            data=node.store,
            lookup=node.access.lookup,
            namespace=node.namespace,
            expand=node.vocab.expand,
            me=me,
        )
    iat = int(now)
    evidence = await asyncio.to_thread(answer, mask, verdict, iat)
    claims = {
        "iss": me,
        "sub": subject,
        "aud": requester,
        "jti": uuid.uuid4().hex,
        "iat": iat,
        "exp": iat + _TOKEN_LIFETIME,
        "delegationEvidence": evidence,
    }
    token = jwt.sign(claims, auth.identity.key, auth.identity.x5c)
    return json_response({"delegation_token": token}, headers={"cache-control": "no-store"})


def _deny(policy: Policy) -> bool:
    return False


async def _json(request: Request) -> Any:
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise BadRequest("a delegation mask is sent as application/json")
    body = await request.body()
    if len(body) > MAX_MASK:
        raise BadRequest(f"the delegation mask is larger than {MAX_MASK} bytes")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not JSON; send a delegation mask") from None


#: iSHARE v2, iSHARE 3.0, and the name this node read before (lower case, as Starlette keeps them)
_EVIDENCE_HEADERS = ("delegation_evidence", "delegationevidence", EVIDENCE_HEADER)


#: the same names as raw header bytes
EVIDENCE_NAMES = frozenset(name.encode() for name in _EVIDENCE_HEADERS)


def evidence_header(request: Request) -> str | None:
    """The delegation evidence the request carries, under any of its names (the first
    name of ``_EVIDENCE_HEADERS`` it uses). One pass over the raw headers: every read
    asks, and almost none carries any."""
    headers: list[tuple[bytes, bytes]] = request.scope["headers"]
    found = {k: v for k, v in reversed(headers) if k in EVIDENCE_NAMES}
    if not found:
        return None
    return next(found[n].decode("latin-1") for name in _EVIDENCE_HEADERS if (n := name.encode()) in found)


async def evidence_rules_for(
    request: Request, caller: Caller, authorities: Collection[str]
) -> tuple[Rule, ...]:
    """The extra permit rules the request's ``Delegation-Evidence`` header gives ``caller``
    (none without the header or on an open node); ``Forbidden`` saying why if the
    evidence is refused. ``authorities``: the ARs the node trusts (its configuration)."""
    token = evidence_header(request)
    auth = node_state(request).auth
    if token is None or auth is None or caller.party_id is None:
        return ()
    node = node_state(request).node
    trusted = [ca.fingerprint for ca in await auth.trust.trusted() if ca.usable]
    entries = {ar: await auth.trust.party(ar) for ar in authorities}
    return rules_from_evidence(
        token.strip(),
        me=auth.identity.party_id,
        caller=caller.party_id,
        trusted=trusted,
        authorities=entries,
        now=auth.clock(),
        expand=node.vocab.expand,
    )


async def grant_of(request: Request, caller: Caller) -> Grant:
    """The caller's grant on a read path: the policy files' rules, widened by delegation
    evidence in the request (``delegation_evidence``) from an authorization registry the
    node trusts (``[policies] authorization_registries``)."""
    node = node_state(request).node
    extra: tuple[Rule, ...] = ()
    if evidence_header(request) is not None:
        extra = await evidence_rules_for(request, caller, node.settings.authorization_registries)
    return node.access.grant(caller, extra)
