"""``/sparql``: the SPARQL 1.1 Protocol over the caller's view, and nothing else.

The query runs on the store ``Access.view`` builds for the caller's grant: the visible
triples in one default graph, with no named graphs, so ``GRAPH``, ``FROM NAMED`` or a
variable in predicate position find nothing the caller may not see. ``SERVICE`` is
refused before anything runs. Each query has a time and a result limit and says clearly
when it hits one. SELECT/ASK answer in SPARQL JSON, XML, CSV or TSV; CONSTRUCT/DESCRIBE
in the node's RDF formats.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any
from urllib.parse import parse_qsl

import pyoxigraph as ox
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import BadRequest, HttpError
from gateway.formats import FORMATS, Page
from gateway.formats.results import RDF_FORMATS, RESULT_FORMATS, boolean, choose, solutions
from gateway.http.auth import reader
from gateway.http.delegation import grant_of
from gateway.http.respond import audit
from gateway.http.state import node_state
from gateway.node import Node, Representation
from gateway.policy.model import Grant

__all__ = ["MAX_QUERY", "QueryLimit", "refuse_service", "sparql"]

MAX_QUERY = 64 * 1024


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


async def _query_text(request: Request) -> str:
    if request.method == "GET":
        values = request.query_params.getlist("query")
    else:
        body = await request.body()
        if len(body) > MAX_QUERY:
            raise BadRequest(f"the query is larger than {MAX_QUERY} bytes")
        ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype == "application/sparql-query":
            values = [body.decode("utf-8", "replace")]
        elif ctype == "application/x-www-form-urlencoded":
            values = [v for k, v in parse_qsl(body.decode("utf-8", "replace")) if k == "query"]
        else:
            raise BadRequest("POST a query as application/sparql-query or as a form with a query field")
    if len(values) != 1 or not values[0].strip():
        raise BadRequest("give exactly one query parameter")
    if any(k in request.query_params for k in ("default-graph-uri", "named-graph-uri")):
        raise BadRequest(
            "default-graph-uri and named-graph-uri are not supported: the caller's view is the dataset"
        )
    return values[0]


def _run(view: ox.Store, query: str, node: Node, deadline: float, max_results: int) -> Any:
    try:
        result = view.query(query, base_iri=node.namespace, prefixes=node.vocab.prefixes)
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


async def sparql(request: Request) -> Response:
    node = node_state(request).node
    caller = reader(request)
    query = await _query_text(request)
    refuse_service(query)
    grant = await grant_of(request, caller)
    limits = node_state(request).sparql_limits
    timeout, max_results = limits
    view = await asyncio.to_thread(node.access.view, grant)
    # the clock starts once the view is built: building it reads data outside the view,
    # which must not decide whether the query runs out of time
    deadline = time.monotonic() + timeout
    try:
        outcome = await asyncio.wait_for(
            asyncio.to_thread(_run, view, query, node, deadline, max_results), timeout + 1
        )
    except TimeoutError:
        raise QueryLimit(f"the query ran out of time ({timeout:g} s); narrow it or add LIMIT") from None
    accept = request.headers.get("accept")
    if isinstance(outcome, bool):
        kind = choose(accept, RESULT_FORMATS, "json")
        body, media = boolean(outcome, kind)
        return _answer(request, node, caller, grant, body, media)
    variables, rows = outcome
    if variables is None:  # CONSTRUCT / DESCRIBE
        fmt = choose(accept, RDF_FORMATS, FORMATS[0])
        triples: list[ox.Triple] = rows
        body = fmt.render(triples, Page(node.vocab, node.namespace, node.namespace + "sparql"))
        resources = tuple(sorted({t.subject.value for t in triples if isinstance(t.subject, ox.NamedNode)}))
        fields = tuple(sorted({t.predicate.value for t in triples}))
        return _answer(request, node, caller, grant, body, fmt.content_type, resources, fields)
    kind = choose(accept, RESULT_FORMATS, "json")
    body, media = solutions(variables, rows, kind)
    return _answer(request, node, caller, grant, body, media)


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
