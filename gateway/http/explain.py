"""``GET /policy/explain?party=P&resource=IRI``: the HTTP twin of ``dsgo policy explain``.

For the node's own operators only: each field of a resource, released by which rule, or
why not.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from gateway.config import PARTY_ID
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.http.auth import json_response, reader
from gateway.http.iris import valid_iri
from gateway.http.openapi import JSON_OBJECT, Operation, Reply, describe, query
from gateway.http.state import node_state
from gateway.policy.model import Caller

__all__ = ["explain"]


@describe(
    get=Operation(
        "Why each field of a resource is released to a party, or withheld (the node's operators only)",
        tags=("policy",),
        parameters=(
            query(
                "party",
                "the party whose view is explained",
                {"type": "string", "pattern": PARTY_ID.pattern},
                True,
            ),
            query("resource", "the resource's IRI", {"type": "string", "minLength": 1}, True),
        ),
        replies={
            200: Reply(
                "each field, the rules releasing it or why it is withheld", {"application/json": JSON_OBJECT}
            )
        },
        errors=(400, 403, 404),
        operation_id="explainPolicy",
    )
)
def _arguments(request: Request) -> tuple[str, str]:
    party, iri = request.query_params.get("party"), request.query_params.get("resource")
    if not party or not iri:
        raise BadRequest("give party=PARTY_ID and resource=IRI")
    if not PARTY_ID.match(party):
        raise BadRequest(f"party {party!r} is not an iSHARE party id")
    if not valid_iri(iri):
        raise NotFound(f"no resource {iri!r} on this node")
    return party, iri


async def explain(request: Request) -> Response:
    state = node_state(request)
    caller = reader(request)
    auth = state.auth
    if auth is not None and caller.party_id != state.settings.party_id:
        raise Forbidden("policy explanations are for the node's own operators")
    party, iri = _arguments(request)
    roles: frozenset[str] = frozenset()
    if auth is not None:
        entry = await auth.trust.party(party)
        roles = frozenset(entry.roles) if entry else frozenset()
    # off the event loop: a node on a remote SPARQL store reads over the network
    reasons = await asyncio.to_thread(state.node.access.explain, Caller(party, roles), iri)
    if not reasons:
        raise NotFound(f"no resource {iri} on this node")
    fields = [
        {"field": r.field, "released": r.released, "rules": list(r.rules), "reason": r.reason}
        for r in reasons
    ]
    return json_response({"party": party, "roles": sorted(roles), "resource": iri, "fields": fields})
