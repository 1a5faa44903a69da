"""``POST /resources``: many resources' views in one answer, for the federation.

Body: ``{"resources": [{"iri": "...", "etag": "..."?}, ...]}`` (at most ``MAX_BATCH``).
Answer: ``{"resources": [{"iri", "status": 200 | 304 | 404, "etag", "ntriples", "withheld",
"withheld_fields"}]}`` (``withheld`` and ``withheld_fields``: present as the
``dsgo-withheld-fields`` and ``dsgo-withheld`` headers are, with their values, from the
caller's view and the policy). Each
resource goes through the same enforcement point as a GET (``Access.resource``), in
N-Triples: 404 for one the caller may not see or that does not exist (the same
answer), 304 when the caller already holds the current version. Every read is audited.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pyoxigraph as ox
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import BadRequest
from gateway.http.auth import reader
from gateway.http.delegation import grant_of
from gateway.http.iris import valid_iri
from gateway.http.openapi import EVIDENCE, IRI_SCHEMA, Body, Operation, Reply, describe
from gateway.http.resources import notice_for
from gateway.http.respond import audit, failed_sources
from gateway.http.state import node_state
from gateway.node import Node, Representation, etag_of, ordered
from gateway.policy.model import Grant

__all__ = ["MAX_BATCH", "batch"]

MAX_BATCH = 500
_MAX_BODY = 1 << 20


_ITEM = {"type": "object", "required": ["iri"], "properties": {"iri": IRI_SCHEMA, "etag": {"type": "string"}}}
_RESULT = {
    "type": "object",
    "required": ["iri", "status"],
    "properties": {
        "iri": {"type": "string"},
        "status": {"enum": [200, 304, 404]},
        "etag": {"type": "string"},
        "ntriples": {"type": "string"},
        "withheld": {"type": "integer"},
        "withheld_fields": {"type": "string"},
    },
}


@describe(
    post=Operation(
        "Many resources' views in one request (N-Triples each), for federated queries",
        "Each resource as a GET would answer it: 404 for one the caller may not see or that does not "
        "exist, 304 for one whose ETag the caller already holds.",
        ("resources",),
        parameters=(EVIDENCE,),
        body=Body(
            {
                "application/json": {
                    "type": "object",
                    "required": ["resources"],
                    "properties": {
                        "resources": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_BATCH,
                            "items": {"anyOf": [_ITEM, IRI_SCHEMA]},
                        }
                    },
                }
            }
        ),
        replies={
            200: Reply(
                "each resource's status and view",
                {
                    "application/json": {
                        "type": "object",
                        "properties": {"resources": {"type": "array", "items": _RESULT}},
                    }
                },
            )
        },
        errors=(400, 403),
        operation_id="postResources",
    )
)
async def batch(request: Request) -> Response:
    node = node_state(request).node
    caller = reader(request)
    body = await request.body()
    if len(body) > _MAX_BODY:
        raise BadRequest(f"the request is larger than {_MAX_BODY} bytes")
    wanted = _parse(body)
    grant = await grant_of(request, caller)
    # off the event loop: a node on a remote SPARQL store reads over the network
    out, rep_meta = await asyncio.to_thread(_read_all, node, grant, wanted)
    seen, released, withheld, rules, purposes = rep_meta
    answer = orjson.dumps({"resources": out})
    rep = Representation(
        answer,
        "application/json",
        "",
        (),
        tuple(seen),
        tuple(sorted(released)),
        withheld,
        tuple(sorted(rules)),
        "; ".join(sorted(purposes)),
    )
    audit(node.audit, request, caller, rep)
    headers = {
        "cache-control": "no-store",
        **{k.decode(): v.decode() for k, v in failed_sources(request).items()},
    }
    return Response(answer, media_type="application/json", headers=headers)


def _read_all(
    node: Node, grant: Grant, wanted: list[tuple[str, str | None]]
) -> tuple[list[dict[str, Any]], tuple[list[str], set[str], int, set[str], set[str]]]:
    out: list[dict[str, Any]] = []
    released: set[str] = set()
    withheld = 0
    rules: set[str] = set()
    purposes: set[str] = set()
    seen: list[str] = []
    for iri, known in wanted:
        decision = node.access.resource(grant, iri) if iri.startswith(node.namespace) else None
        if decision is None:
            out.append({"iri": iri, "status": 404})
            continue
        text = (ox.serialize(ordered(decision.triples), format=ox.RdfFormat.N_TRIPLES) or b"").decode()
        etag = etag_of(text.encode())
        seen.append(iri)
        released |= decision.released
        withheld += decision.withheld
        rules.update(decision.rules)
        purposes.update(decision.purposes)
        out.append(_entry(node, grant, iri, decision.triples, text, etag, known))
    return out, (seen, released, withheld, rules, purposes)


def _entry(
    node: Node, grant: Grant, iri: str, triples: list[ox.Triple], text: str, etag: str, known: str | None
) -> dict[str, Any]:
    """One resource's entry: 304 when the caller holds this version; else its N-Triples
    and, as the ``dsgo-withheld-fields`` and ``dsgo-withheld`` headers would, what the
    policy withholds."""
    if known == etag:
        return {"iri": iri, "status": 304, "etag": etag}
    entry: dict[str, Any] = {"iri": iri, "status": 200, "etag": etag, "ntriples": text}
    told = notice_for(node, grant, iri, triples)
    if told is not None:
        entry["withheld"], entry["withheld_fields"] = told.count, told.header
    return entry


def _parse(body: bytes) -> list[tuple[str, str | None]]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest('the body must be JSON: {"resources": [{"iri": ...}]}') from None
    items = data.get("resources") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise BadRequest('give a non-empty "resources" list')
    if len(items) > MAX_BATCH:
        raise BadRequest(f"at most {MAX_BATCH} resources per request")
    return [_item(i, item) for i, item in enumerate(items)]


def _item(i: int, item: Any) -> tuple[str, str | None]:
    iri = item.get("iri") if isinstance(item, dict) else item
    etag = item.get("etag") if isinstance(item, dict) else None
    if not isinstance(iri, str) or not iri.startswith(("http://", "https://")) or not valid_iri(iri):
        raise BadRequest(f"resources[{i}].iri is not an http(s) IRI (RFC 3987)")
    if etag is not None and not isinstance(etag, str):
        raise BadRequest(f"resources[{i}].etag must be a string")
    return iri, etag
