"""``/sparql``: the SPARQL 1.1 Protocol over the caller's view, and nothing else.

The query runs on the store ``Access.view`` builds for the caller's grant: the visible
triples in one default graph, with no named graphs, so ``GRAPH``, ``FROM NAMED`` or a
variable in predicate position find nothing the caller may not see. ``SERVICE`` is
refused before anything runs. Each query has a time and a result limit and says clearly
when it hits one. The request, the result formats and the service description are the
protocol's, in ``gateway.http.sparql_protocol``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pyoxigraph as ox
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import BadRequest, HttpError
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
    write_outcome,
)
from gateway.http.state import node_state
from gateway.node import Node, Representation
from gateway.policy.model import Grant

__all__ = ["MAX_QUERY", "QueryLimit", "refuse_service", "sparql"]


class QueryLimit(HttpError):
    code, status, title = "query_limit", 400, "Query limit reached"


_STRIPPED = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*"""'
    r"|'''(?:[^'\\]|\\.|'(?!''))*'''"
    r'|"(?:[^"\\\n]|\\.)*"'
    r"|'(?:[^'\\\n]|\\.)*'"
    r"|<[^<>\s]*>"
    r"|#[^\n]*",
    re.S,
)


def refuse_service(query: str) -> None:
    """SERVICE would reach other hosts with the node's rights: refused, whatever its case."""
    bare = _STRIPPED.sub(" ", query)
    if re.search(r"(?<![\w:?$])SERVICE\b", bare, re.I):
        raise BadRequest("SERVICE is not allowed here; a federated query is asked at your own node")


_FROM = re.compile(r"(?<![\w:?$])FROM(?![\w:-])", re.I)


def names_a_dataset(query: str) -> bool:
    """Whether the query names its own dataset (``FROM``, ``FROM NAMED``). A caller's
    view is one default graph and no named graphs, so such graphs do not exist in it:
    the query then runs over an empty dataset, as it would over a store of the view."""
    return bool(_FROM.search(_STRIPPED.sub(" ", query)))


def _run(run: Callable[..., Any], query: str, node: Node, deadline: float, max_results: int) -> Any:
    try:
        result = run(query, base_iri=node.namespace, prefixes=node.vocab.prefixes)
    except SyntaxError as exc:
        raise BadRequest(f"the query does not parse: {exc.msg or exc}") from None
    except (ValueError, OSError) as exc:
        raise BadRequest(f"the query cannot run: {exc}") from None
    if isinstance(result, ox.QueryBoolean):
        return bool(result)
    variables = [v.value for v in result.variables] if isinstance(result, ox.QuerySolutions) else None
    rows, problem = _collect(result, deadline, max_results)
    del result  # pyoxigraph iterators must be dropped on the thread that made them
    if isinstance(problem, Exception):
        raise problem
    return (variables, rows)


def _collect(result: Any, deadline: float, max_results: int) -> tuple[list[Any], Exception | None]:
    rows: list[Any] = []
    try:
        for row in result:
            rows.append(row)
            if len(rows) > max_results:
                return rows, QueryLimit(
                    f"the query has more than {max_results} results; narrow it or add LIMIT"
                )
            if len(rows) % 256 == 0 and time.monotonic() > deadline:
                break
    except (ValueError, OSError) as exc:
        return rows, BadRequest(f"the query failed: {exc}")
    if time.monotonic() > deadline:
        return rows, QueryLimit("the query ran out of time; narrow it or add LIMIT")
    return rows, None


@describe(get=SPARQL_GET, post=SPARQL_POST)
async def sparql(request: Request) -> Response:
    node = node_state(request).node
    caller = reader(request)
    query = await query_text(request)
    if query is None:
        return _described(request, node)
    refuse_service(query)
    grant = await grant_of(request, caller)
    limits = node_state(request).sparql_limits
    timeout, max_results = limits
    labelled = node.access.labelled(grant)
    if labelled is not None:
        graphs = () if names_a_dataset(query) else labelled.graphs
        run: Callable[..., Any] = partial(node.access.store.query, graphs=graphs)
    else:
        run = (await asyncio.to_thread(node.access.view, grant)).query
    # the clock starts once the view is chosen: building one reads data outside it,
    # which must not decide whether the query runs out of time
    deadline = time.monotonic() + timeout
    try:
        outcome = await asyncio.wait_for(
            asyncio.to_thread(_run, run, query, node, deadline, max_results), timeout + 1
        )
    except TimeoutError:
        raise QueryLimit(f"the query ran out of time ({timeout:g} s); narrow it or add LIMIT") from None
    body, media, resources, fields = write_outcome(outcome, request.headers.get("accept"), node)
    return _answer(request, node, caller, grant, body, media, resources, fields)


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
    """The answer, audited: resources and fields of a graph result; the grant's permits,
    since a query runs over the caller's whole view."""
    rules, purposes = grant.permits()
    audit(
        node.audit,
        request,
        caller,
        Representation(body, media, "", (), resources, fields, 0, rules, "; ".join(purposes)),
    )
    return Response(body, media_type=media, headers={"vary": "Accept", "cache-control": "no-store"})
