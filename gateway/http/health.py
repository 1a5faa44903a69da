"""``GET /health``: the node's state per dependency, in detail for its own operators.

Anyone learns the overall status and each part's status; the node's own party (or anyone,
on an open node) also sees the details: sources, policy, audit log.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.audit import AuditLog
from gateway.http.auth import json_response, optional_bearer
from gateway.http.openapi import JSON_OBJECT, Operation, Reply, describe
from gateway.http.state import node_state

__all__ = ["health"]


@describe(
    get=Operation(
        "The node's health: each source, the policy files and the audit log",
        "Anyone sees the statuses; the node's own party (and an open node) sees the details.",
        ("node",),
        auth="optional",
        replies={200: Reply("ok or degraded", {"application/json": JSON_OBJECT})},
        operation_id="getHealth",
    )
)
async def health(request: Request) -> Response:
    state = node_state(request)
    node, auth = state.node, state.auth
    sources = node.sources.health()
    policy = node.access.health()
    audit = _audit_health(state.audit)
    ok = (
        all(s["status"] == "ok" for s in sources.values())
        and policy["status"] != "failed"
        and audit["status"] in ("ok", "off")
    )
    body: dict[str, Any] = {"status": "ok" if ok else "degraded", "party_id": state.settings.party_id}
    caller = optional_bearer(request) if auth is not None else None
    if auth is None or (caller is not None and caller.party_id == state.settings.party_id):
        body.update(namespace=node.namespace, sources=sources, policy=policy, audit=audit)  # operators
    else:
        body["sources"] = {name: {"status": s["status"]} for name, s in sources.items()}
        body["policy"] = {"status": policy["status"]}
        body["audit"] = {"status": audit["status"]}
    return json_response(body)


def _audit_health(log: AuditLog | None) -> dict[str, Any]:
    """``failing`` while batches cannot be written (they wait in memory and are retried),
    with how many reads wait, were written and were dropped (each drop is also a gap entry
    in the log itself)."""
    if log is None:
        return {"status": "off"}
    now = log.status()
    return {
        "status": "failing" if now.last_error else "ok",
        "queued": now.queued,
        "written": now.written,
        "dropped": now.dropped,
        "last_error": now.last_error,
    }
