"""``/health``, ``/health/live`` and ``/health/ready``: the node's state per dependency.

Each dependency is ``ready``, ``degraded`` (the node answers, but not at its best: a
source serves its last good version, the registry answers from cache, the audit log
retries) or ``failing`` (some reads or callers are refused, or data is missing); the
node's ``status`` is the worst of them, or ``starting`` until its sources were first read.

- ``GET /health`` always answers 200 with the whole picture: machine-readable, in detail
  for the node's own party (or anyone, on an open node); others see the statuses only.
- ``GET /health/live`` (liveness: restart the process if this fails) answers 200 while
  the process serves requests at all.
- ``GET /health/ready`` (readiness: send traffic here?) answers 200 while the node is
  ``ready`` or ``degraded``, 503 while it is ``starting`` or ``failing``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.audit import AuditLog
from gateway.http.auth import json_response, optional_bearer
from gateway.http.openapi import JSON_OBJECT, Operation, Reply, describe
from gateway.http.state import NodeState, node_state
from gateway.identity.registry_client import RegistryClient
from gateway.policy.load import policy_files

__all__ = ["health", "live", "ready"]

_ORDER = {"ready": 0, "degraded": 1, "starting": 2, "failing": 3}
_SOURCE = {"ok": "ready", "empty": "degraded", "unknown": "degraded"}


@describe(
    get=Operation(
        "The node's health: ready, degraded or failing per dependency",
        "Sources, policy files, audit log, registry and replay cache; anyone sees the statuses, "
        "the node's own party (and an open node) sees the details. Always 200.",
        ("node",),
        auth="optional",
        replies={200: Reply("ready, degraded, starting or failing", {"application/json": JSON_OBJECT})},
        operation_id="getHealth",
    )
)
async def health(request: Request) -> Response:
    state = node_state(request)
    checks = await _checks(state)
    body: dict[str, Any] = {"status": _overall(state, checks), "party_id": state.settings.party_id}
    caller = optional_bearer(request) if state.auth is not None else None
    if state.auth is None or (caller is not None and caller.party_id == state.settings.party_id):
        body.update(namespace=state.node.namespace, **checks)  # operators: everything
    else:
        body.update({name: _statuses(name, part) for name, part in checks.items()})
    return json_response(body)


@describe(
    get=Operation(
        "Liveness: the process serves requests",
        "For container and load balancer probes: restart the process if this does not answer 200.",
        ("node",),
        auth="none",
        replies={200: Reply("live", {"application/json": JSON_OBJECT})},
        operation_id="getLiveness",
    )
)
async def live(request: Request) -> Response:
    return json_response({"status": "live"})


@describe(
    get=Operation(
        "Readiness: 200 while ready or degraded, 503 while starting or failing",
        "For container and load balancer probes: send traffic while this answers 200.",
        ("node",),
        auth="none",
        replies={
            200: Reply("ready or degraded", {"application/json": JSON_OBJECT}),
            503: Reply("starting or failing", {"application/json": JSON_OBJECT}),
        },
        operation_id="getReadiness",
    )
)
async def ready(request: Request) -> Response:
    state = node_state(request)
    checks = await _checks(state)
    status = _overall(state, checks)
    body = {"status": status, **{name: _statuses(name, part) for name, part in checks.items()}}
    return json_response(body, 200 if status in ("ready", "degraded") else 503)


async def _checks(state: NodeState) -> dict[str, Any]:
    checks: dict[str, Any] = {
        "sources": _sources(state),
        "policy": _policy(state),
        "audit": _audit(state.audit, state.settings.audit_on_failure),
    }
    if state.auth is not None:
        checks["registry"] = _registry(state)
        checks["replay_cache"] = await _replay(state)
    return checks


def _overall(state: NodeState, checks: dict[str, Any]) -> str:
    worst = "ready" if state.started else "starting"
    for name, part in checks.items():
        statuses = [s["status"] for s in part.values()] if name == "sources" else [part["status"]]
        worst = max([worst, *statuses], key=_ORDER.__getitem__)
    return worst


def _statuses(name: str, part: dict[str, Any]) -> dict[str, Any]:
    """What anyone may learn of a part: its status (per source, for the sources)."""
    if name == "sources":
        return {source: {"status": s["status"]} for source, s in part.items()}
    return {"status": part["status"]}


def _sources(state: NodeState) -> dict[str, Any]:
    """A failed source is ``degraded`` while its last good version serves, else ``failing``."""
    out = {}
    for name, entry in state.node.sources.health().items():
        served = entry.get("triples", 0) or entry.get("type") == "sparql"
        status = _SOURCE.get(entry["status"], "degraded" if served else "failing")
        if entry["status"] == "failed" and entry.get("type") == "sparql":
            status = "failing"
        out[name] = {**entry, "state": entry["status"], "status": status}
    return out


def _policy(state: NodeState) -> dict[str, Any]:
    """Files present and loaded: ``failing`` when the policy folder has none (the node then
    shares nothing), ``degraded`` when a changed file could not be loaded (the previous
    policy stays in force) or the files hold no rules."""
    report = dict(state.node.access.health())
    folder = state.settings.policies_dir
    if state.settings.open or folder is None:  # shares all, or (by design) nothing
        return {**report, "status": "ready", "state": report["status"]}
    try:
        files = policy_files(folder)
    except OSError:
        files = []
    report.update(state=report["status"], files=[f.name for f in files], dir=str(folder))
    if not files:
        report.update(status="failing", detail=f"no policy files in {folder}: the node shares nothing")
    elif report["state"] == "failed" or not report.get("rules"):
        report["status"] = "degraded"
    else:
        report["status"] = "ready"
    return report


def _audit(log: AuditLog | None, on_failure: str) -> dict[str, Any]:
    """``failing`` while batches cannot be written and the queue is full (reads are then
    refused, or served unrecorded with ``audit_on_failure = "serve"``), ``degraded`` while
    they cannot be written (they wait in memory and are retried)."""
    if log is None:
        return {"status": "ready", "state": "off"}
    now = log.status()
    status = "ready"
    if now.last_error:
        status = "failing" if now.full else "degraded"
    return {
        "status": status,
        "queued": now.queued,
        "written": now.written,
        "dropped": now.dropped,
        "last_error": now.last_error,
        "on_failure": on_failure,
    }


def _registry(state: NodeState) -> dict[str, Any]:
    registry = state.auth.trust if state.auth is not None else None
    if not isinstance(registry, RegistryClient):
        return {"status": "ready"}
    registry.check()  # renewed in the background when due: this answer never waits on it
    found = registry.state()
    return {**found, "state": found["status"], "status": _REGISTRY[found["status"]]}


_REGISTRY = {"ok": "ready", "degraded": "degraded", "failing": "failing"}


async def _replay(state: NodeState) -> dict[str, Any]:
    assert state.auth is not None
    kind = "redis" if state.settings.redis_url else "memory"
    try:
        problem = await asyncio.wait_for(state.auth.replay.check(), 2.0)
    except TimeoutError:
        problem = "Redis did not answer within 2 s"
    if problem is None:
        return {"status": "ready", "kind": kind}
    return {"status": "failing", "kind": kind, "error": problem}
