"""``/sparql``: the SPARQL 1.1 Protocol over the caller's view, and nothing else.

The query's dataset is the caller's view: the union of the label graphs its grant sees
(``gateway.views``) as the one default graph, with no named graphs, so ``GRAPH``,
``FROM``/``FROM NAMED`` or a variable in predicate position find nothing the caller may
not see. ``SERVICE`` is refused before anything runs. The query runs in a worker process
(``gateway.sparql.pool``) that is killed when its time is up, each party with its fair
share of the workers; time and result limits say clearly when they are hit. The request,
the result formats and the service description are the protocol's, in
``gateway.http.sparql_protocol``; the workers render answers with ``gateway.formats.results``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import BadRequest, Busy, QueryLimit
from gateway.formats import Page
from gateway.http.auth import reader
from gateway.http.delegation import grant_of
from gateway.http.openapi import describe
from gateway.http.respond import audit
from gateway.http.sparql_protocol import (
    MAX_QUERY,
    SPARQL_GET,
    SPARQL_POST,
    graph_format,
    query_text,
    service_description,
)
from gateway.http.state import node_state
from gateway.labels import rule_key
from gateway.node import Node, Representation
from gateway.policy.model import Grant
from gateway.sparql.pool import QueryPool, Snapshot
from gateway.sparql.text import bare, names_a_dataset
from gateway.sparql.worker import Request as Job
from gateway.views import View

__all__ = ["MAX_QUERY", "QueryLimit", "answered", "audited", "dataset_in", "refuse_service", "sparql"]


def refuse_service(query: str) -> None:
    """SERVICE would reach other hosts with the node's rights: refused, whatever its case."""
    if re.search(r"(?<![\w:?$])SERVICE\b", bare(query), re.I):
        raise BadRequest("SERVICE is not allowed here; a federated query is asked at your own node")


@describe(get=SPARQL_GET, post=SPARQL_POST)
async def sparql(request: Request) -> Response:
    state = node_state(request)
    node, pool = state.node, state.queries
    caller = reader(request)
    query = await query_text(request)
    if query is None:
        return _described(request, node)
    refuse_service(query)
    grant = await grant_of(request, caller)
    timeout, max_results = state.sparql_limits
    assert pool is not None  # a node on a remote store does not route /sparql here
    job = await _job(node, pool, grant, query, request.headers.get("accept"), max_results)
    answer = await pool.run(caller.party_id or "anonymous", job, timeout)
    return _answer(request, node, caller, grant, answer.body, answer.media, answer.resources, answer.fields)


async def _job(node: Node, pool: QueryPool, grant: Grant, query: str, accept: str | None, limit: int) -> Job:
    """What a worker runs: the query over the label graphs the grant sees in the current
    snapshot; for a grant the labels do not cover, the grant itself (the worker decides
    its view from the snapshot)."""
    for _ in range(4):
        snapshot = await pool.snapshot()
        if not snapshot.labels.state:  # not labelled yet (a new store): label, then look again
            await asyncio.to_thread(node.access.sync_labels)
            continue
        view = node.access.labelled_at(snapshot.labels, grant)
        if view is None:
            key = tuple(sorted(rule_key(r) for r in grant.rules))
            return Job(snapshot.folder, None, query, accept, limit, node.namespace, grant, key)
        graphs = await _dataset(node, view, snapshot)
        if graphs is not None:
            graphs = () if names_a_dataset(query) else graphs
            return Job(snapshot.folder, graphs, query, accept, limit, node.namespace)
    raise Busy("the node's data changed while the query was being prepared; try again", 1)


async def _dataset(node: Node, view: View, snapshot: Snapshot) -> tuple[str, ...] | None:
    """The graphs a query over ``view`` reads in ``snapshot`` (``dataset_in``); ``None``
    when the residue had to be made first (a new snapshot then holds it)."""
    graphs = dataset_in(view, snapshot)
    if graphs is None:
        small = view.plan()[1]
        await asyncio.to_thread(node.access.store.residue, view.residue(small), small)
    return graphs


def dataset_in(view: View, snapshot: Snapshot) -> tuple[str, ...] | None:
    """The graphs a query over ``view`` reads in ``snapshot``: its few large label graphs
    and one residue copying its many small ones; ``None`` while ``snapshot`` lacks that
    residue."""
    direct, small = view.plan()
    if not small:
        return tuple(g.value for g in direct)
    residue = view.residue(small)
    if residue in snapshot.residues:
        return (*(g.value for g in direct), residue.value)
    return None


def _described(request: Request, node: Node) -> Response:
    """The SPARQL 1.1 Service Description of this endpoint (GET without a query)."""
    fmt = graph_format(request.headers.get("accept"))
    endpoint = str(request.url.replace(query=""))
    body = fmt.render(service_description(node, endpoint), Page(node.vocab, node.namespace, endpoint))
    return Response(body, media_type=fmt.content_type, headers={"vary": "Accept"})


def _answer(
    request: Request,
    node: Node,
    caller: Any,
    grant: Grant,
    body: bytes,
    media: str,
    resources: tuple[str, ...] = (),
    fields: tuple[str, ...] = (),
) -> Response:
    """The answer, audited (``audited``)."""
    audit(node.audit, request, caller, audited(grant, body, media, resources, fields))
    return answered(body, media)


def audited(
    grant: Grant, body: bytes, media: str, resources: tuple[str, ...] = (), fields: tuple[str, ...] = ()
) -> Representation:
    """What the audit log records of an answer: resources and fields of a graph result;
    the grant's permits, since a query runs over the caller's whole view."""
    rules, purposes = grant.permits()
    return Representation(body, media, "", (), resources, fields, 0, rules, "; ".join(purposes))


class _Answered(Response):
    """An answer's response, its header bytes written directly (as ``Response`` would)."""

    def __init__(self, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code, self.body, self.raw_headers, self.background = 200, body, raw_headers, None


def answered(body: bytes, media: str) -> Response:
    """A query's answer: never cached (it is the caller's view now), varying by ``Accept``;
    the headers Starlette's ``Response(body, media_type=media, headers=...)`` would send."""
    if media.startswith("text/") and "charset=" not in media.lower():
        media += "; charset=utf-8"
    return _Answered(
        body,
        [
            (b"vary", b"Accept"),
            (b"cache-control", b"no-store"),
            (b"content-length", str(len(body)).encode()),
            (b"content-type", media.encode("latin-1")),
        ],
    )
