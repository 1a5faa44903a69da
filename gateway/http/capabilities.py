"""``GET /capabilities``: what the node offers, as iSHARE's capabilities endpoint.

Public features for anyone; the restricted ones (the read paths) for callers with a
token, in a ``capabilities_token`` the node signs. A read path the node cannot enforce
(``/sparql`` on a remote store) is listed as not offered, with why.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.http.auth import json_response, optional_bearer, signed
from gateway.http.openapi import JSON_OBJECT, RDF_TYPES, Operation, Reply, describe
from gateway.http.state import NodeState, node_state
from gateway.notify.notifier import WEBHOOK_PATH
from gateway.notify.subscription import EVENT_TYPES
from gateway.store.remote import SPARQL_NOT_OFFERED

__all__ = ["capabilities", "feature"]

#: (feature, path, description) anyone may see
_PUBLIC = (
    ("capabilities", "/capabilities", "Retrieves iSHARE capabilities"),
    ("access token", "/connect/token", "Obtains access token"),
    ("health", "/health", "The node's health: its sources, policy files and audit log"),
    ("api description", "/openapi.json", "The OpenAPI 3.1 description of every endpoint (also at /docs)"),
)


def feature(base: str, name: str, path: str, description: str, token: bool, **extra: Any) -> dict[str, Any]:
    """An iSHARE v2 capabilities feature: a stable ``id``, ``feature``, ``description``,
    and absolute ``url`` (and ``token_endpoint``) on this node."""
    out: dict[str, Any] = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"dsgo:feature:{path}")).upper(),
        "feature": name,
        "description": description,
        "url": base + path,
    }
    if token:
        out["token_endpoint"] = base + "/connect/token"
    return out | extra


def _restricted(state: NodeState) -> list[tuple[str, str, str, dict[str, Any]]]:
    """What callers with a token may use: (feature, path, description, extra members)."""
    node = state.node
    sparql: dict[str, Any] = (
        {}
        if node.remote is None  # a remote store's views cannot be had without copying it
        else {"offered": False, "reason": SPARQL_NOT_OFFERED}
    )
    return [
        ("description", "/", "The node's VoID/DCAT description", {"formats": list(RDF_TYPES)}),
        (
            "resource",
            "/{path}",
            "A resource's view: the path after the namespace",
            {"namespace": node.namespace},
        ),
        ("collection", "/collections/{class}", "The resources of a class, paged", {}),
        ("sparql", "/sparql", "SPARQL 1.1 over the caller's view (service description at GET)", sparql),
        ("delegation", "/delegation", "Delegation evidence from the node's policies", {}),
        ("batch", "/resources", "Many resources' views in one request", {}),
        _subscriptions(state),
    ]


NOT_OFFERED_OPEN = "an open node has no identity to sign notifications with"
NOT_OFFERED_REMOTE = "this node reads a remote store whose changes it does not watch (watch = 0)"
#: where a node with an identity takes notifications for its party (signed, so no token)
_WEBHOOK = ("notifications", WEBHOOK_PATH, "Webhook for notifications to this party (signed, detached JWS)")


def _subscriptions(state: NodeState) -> tuple[str, str, str, dict[str, Any]]:
    """DSGO's ``/subscriptions``: not offered on a node without an identity to sign with,
    nor on one whose remote store is not watched for changes (``watch = 0``)."""
    description = (
        "Change notifications of the fields you may read, signed (x-jws-signature), "
        "replayable at /subscriptions/{id}/events?since=N"
    )
    if state.notifier is None:
        why = NOT_OFFERED_OPEN if state.auth is None else NOT_OFFERED_REMOTE
        return ("subscriptions", "/subscriptions", description, {"offered": False, "reason": why})
    return ("subscriptions", "/subscriptions", description, {"event_types": list(EVENT_TYPES)})


_NO_TOKEN = ("/connect/token", WEBHOOK_PATH)


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
    base = str(request.base_url).rstrip("/")
    listed = (*_PUBLIC, _WEBHOOK) if state.inbox is not None else _PUBLIC
    public = [feature(base, n, p, d, auth is not None and p not in _NO_TOKEN) for n, p, d in listed]
    restricted = [feature(base, n, p, d, auth is not None, **x) for n, p, d, x in _restricted(state)]
    if auth is None:
        return json_response({"party_id": party_id, "public": public + restricted})
    caller = optional_bearer(request)
    features: dict[str, Any] = {"public": public}
    if caller is not None:
        features["restricted"] = restricted
    info = {
        "party_id": party_id,
        "ishare_roles": [{"role": "ServiceProvider"}],
        "supported_versions": [{"version": "2.0", "supported_features": [features]}],
    }
    audience = caller.party_id if caller else None
    return json_response(signed(auth.identity, "capabilities_info", info, audience, state.clock()))
