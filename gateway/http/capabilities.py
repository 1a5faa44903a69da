"""``GET /capabilities``: what the node offers, as iSHARE's capabilities endpoint.

Public features for anyone; the restricted ones (the read paths) for callers with a
token, in a ``capabilities_token`` the node signs. A read path the node cannot enforce
(``/sparql`` on a remote store) is listed as not offered, with why.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.http.auth import json_response, optional_bearer, signed
from gateway.http.openapi import JSON_OBJECT, Operation, Reply, describe
from gateway.http.state import NodeState, node_state
from gateway.store.remote import SPARQL_NOT_OFFERED

__all__ = ["capabilities"]

_PUBLIC = [
    {"feature": "access token", "url": "/connect/token"},
    {"feature": "capabilities", "url": "/capabilities"},
    {"feature": "health", "url": "/health"},
]


def _restricted(state: NodeState) -> list[dict[str, Any]]:
    """What callers with a token may use."""
    node = state.node
    sparql: dict[str, Any] = (
        {"feature": "sparql", "url": "/sparql", "description": "SPARQL 1.1 over the caller's view"}
        if node.remote is None  # a remote store's views cannot be had without copying it
        else {"feature": "sparql", "url": "/sparql", "offered": False, "reason": SPARQL_NOT_OFFERED}
    )
    return [
        {"feature": "description", "url": "/", "formats": ["text/turtle", "application/ld+json"]},
        {"feature": "resource", "url": "/{path}", "namespace": node.namespace},
        {"feature": "collection", "url": "/collections/{class}"},
        sparql,
        {"feature": "delegation", "url": "/delegation"},
        {"feature": "batch", "url": "/resources", "description": "many resources' views in one request"},
    ]


@describe(
    get=Operation(
        "iSHARE capabilities: the public endpoints, and with a token the restricted ones",
        "A capabilities_token signed by the node (iSHARE v2); an open node answers the plain list.",
        ("iSHARE",),
        auth="optional",
        replies={200: Reply("capabilities", {"application/json": JSON_OBJECT})},
        operation_id="getCapabilities",
    )
)
async def capabilities(request: Request) -> Response:
    state = node_state(request)
    party_id, auth = state.settings.party_id, state.auth
    restricted = _restricted(state)
    if auth is None:
        return json_response({"party_id": party_id, "public": _PUBLIC + restricted})
    caller = optional_bearer(request)
    features: dict[str, Any] = {"public": _PUBLIC}
    if caller is not None:
        features["restricted"] = [{**f, "token_endpoint": "/connect/token"} for f in restricted]
    info = {
        "party_id": party_id,
        "ishare_roles": [{"role": "ServiceProvider"}],
        "supported_versions": [{"version": "2.0", "supported_features": [features]}],
    }
    audience = caller.party_id if caller else None
    return json_response(signed(auth.identity, "capabilities_info", info, audience, state.clock()))
