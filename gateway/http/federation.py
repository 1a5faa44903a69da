"""``POST /federation/query``: a party asks its own node a question across the federation.

Only the node's own party and its configured local clients may ask: the node follows
links with its *own* identity, so answering a remote party would let it borrow the
node's rights (the confused deputy). Body: ``{"query", "start"?: [IRI], "follow"?:
"predicates" | "all", "max_depth"?, "max_documents"?, "timeout"?, "provenance"?: bool}``.
Answer: SPARQL JSON results (or ``ntriples`` for CONSTRUCT) with a ``report`` saying
which node supplied what, what failed or was withheld, and whether the answer is
complete. With ``Accept: application/x-ndjson`` progress lines come first; an error after
the stream has begun is its last line, ``{"error": <problem+json body>}``, made where every
other error response is made (``gateway.http.problems.problem_body``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pyoxigraph as ox
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.errors import BadRequest, Forbidden
from gateway.federation.walk import Budget, Outcome, Progress
from gateway.formats.results import term_json
from gateway.http.auth import json_response, reader
from gateway.http.iris import valid_iri
from gateway.http.openapi import IRI_SCHEMA, JSON_OBJECT, Body, Operation, Reply, describe
from gateway.http.problems import problem_body
from gateway.http.sparql import refuse_service
from gateway.http.sparql_protocol import MAX_QUERY
from gateway.http.state import node_state

__all__ = ["federated_query", "outcome_json"]


def _budget(body: dict[str, Any], defaults: Budget) -> Budget:
    def number(key: str, kind: type, low: float, high: float) -> Any:
        value = body.get(key, getattr(defaults, key))
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise BadRequest(f"{key} must be a number from {low:g} to {high:g}")
        return kind(value)

    follow = body.get("follow", defaults.follow)
    if follow not in ("predicates", "all"):
        raise BadRequest('follow must be "predicates" or "all"')
    return Budget(
        max_documents=number("max_documents", int, 1, defaults.max_documents),
        max_depth=number("max_depth", int, 0, 10),
        timeout=number("timeout", float, 0.1, defaults.timeout),
        # a slow node may take at most half the time, so the others' answers still count
        node_timeout=min(defaults.node_timeout, number("timeout", float, 0.1, defaults.timeout) / 2),
        concurrency=defaults.concurrency,
        follow=follow,
        limits=defaults.limits,
    )


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": outcome.kind, "report": outcome.report}
    if outcome.kind == "ask":
        out.update(head={}, boolean=outcome.boolean)
    elif outcome.kind == "graph":
        out["ntriples"] = (ox.serialize(outcome.triples, format=ox.RdfFormat.N_TRIPLES) or b"").decode()
    else:
        out["head"] = {"vars": outcome.variables}
        out["results"] = {"bindings": [{k: term_json(v) for k, v in row.items()} for row in outcome.rows]}
        if outcome.sources is not None:
            out["sources"] = outcome.sources
    return out


_QUESTION = {
    "type": "object",
    "required": ["query"],
    "properties": {
        "query": {"type": "string", "minLength": 1},
        "start": {"type": "array", "items": IRI_SCHEMA},
        "follow": {"enum": ["predicates", "all"]},
        "max_depth": {"type": "integer", "minimum": 0, "maximum": 10},
        "max_documents": {"type": "integer", "minimum": 1},
        "timeout": {"type": "number", "minimum": 0.1},
        "provenance": {"type": "boolean"},
    },
}


@describe(
    post=Operation(
        "A federated SPARQL query, asked by the node's own party (or its configured local clients)",
        "The node follows links live with its own identity; the answer carries a report per node.",
        ("federation",),
        body=Body({"application/json": _QUESTION}),
        replies={
            200: Reply(
                "the results (SPARQL JSON, or ntriples for a graph) and the report; with Accept: "
                "application/x-ndjson, progress lines first",
                {"application/json": JSON_OBJECT, "application/x-ndjson": {"type": "string"}},
            )
        },
        errors=(400, 403),
        operation_id="federatedQuery",
    )
)
def _question(raw: bytes) -> tuple[dict[str, Any], str, list[str]]:
    """The body, its query (SERVICE refused) and its start IRIs; ``BadRequest`` saying why not."""
    if len(raw) > MAX_QUERY:
        raise BadRequest(f"the request is larger than {MAX_QUERY} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest('the body must be JSON: {"query": "SELECT ..."}') from None
    if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body["query"].strip():
        raise BadRequest('give a "query"')
    refuse_service(body["query"])
    return body, body["query"], _start(body.get("start", []))


def _start(start: Any) -> list[str]:
    if not isinstance(start, list) or not all(
        isinstance(s, str) and s.startswith(("http://", "https://")) and valid_iri(s) for s in start
    ):
        raise BadRequest('"start" must be a list of http(s) IRIs (RFC 3987)')
    return start


async def federated_query(request: Request) -> Response:
    state = node_state(request)
    federation = state.federation
    if federation is None:
        raise Forbidden("this node has no identity to query other nodes with (it is open)")
    if reader(request).party_id not in state.federation_clients:
        raise Forbidden(
            "only this node's own party and its configured local clients may ask it federated questions; "
            "ask your own node"
        )
    body, query, start = _question(await request.body())
    budget = _budget(body, state.federation_budget)
    provenance = bool(body.get("provenance", False))
    if "application/x-ndjson" not in (request.headers.get("accept") or ""):
        outcome = await federation.run(query, start, budget, provenance=provenance)
        return json_response(outcome_json(outcome), headers={"cache-control": "no-store"})

    async def run(progress: Progress) -> Outcome:
        return await federation.run(query, start, budget, progress, provenance)

    return StreamingResponse(
        _streamed(run), media_type="application/x-ndjson", headers={"cache-control": "no-store"}
    )


async def _streamed(run: Callable[[Progress], Awaitable[Outcome]]) -> AsyncIterator[bytes]:
    """Progress lines, then the result, or an error line made as every error response is."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def produce() -> None:
        try:
            outcome = await run(lambda p: queue.put_nowait(orjson.dumps({"progress": p}) + b"\n"))
            queue.put_nowait(orjson.dumps({"result": outcome_json(outcome)}) + b"\n")
        except Exception as exc:  # the stream has started: its last line says what went wrong
            problem, _ = problem_body(exc, "POST /federation/query (streamed)")
            queue.put_nowait(orjson.dumps({"error": problem}) + b"\n")
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(produce())
    try:
        while (line := await queue.get()) is not None:
            yield line
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
