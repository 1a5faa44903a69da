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
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape, quoteattr

import orjson
import pyoxigraph as ox
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import BadRequest, HttpError, NotAcceptable
from gateway.formats import FORMATS, Page
from gateway.http.auth import reader
from gateway.http.delegation import grant_of
from gateway.http.respond import audit
from gateway.http.state import node_state
from gateway.node import Node, Representation
from gateway.policy.model import Grant

__all__ = ["MAX_QUERY", "QueryLimit", "refuse_service", "sparql"]

MAX_QUERY = 64 * 1024
_RESULTS = {
    "application/sparql-results+json": "json",
    "application/json": "json",
    "application/sparql-results+xml": "xml",
    "application/xml": "xml",
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
}
_RDF = {t: f for f in FORMATS if f.name != "html" for t in (f.media_type, *f.aliases)}


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


def _choose(accept: str | None, table: dict[str, Any], default: Any) -> Any:
    if not accept or accept.strip() in ("*/*", ""):
        return default
    best, best_q = None, 0.0
    for part in accept.split(","):
        fields = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = fields[0].lower()
        found = (
            default
            if media in ("*/*", "application/*", "text/*") and default is not None
            else table.get(media)
        )
        if found is not None and q > best_q:
            best, best_q = found, q
    if best is None:
        raise NotAcceptable("offered: " + ", ".join(table))
    return best


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
    deadline = time.monotonic() + timeout
    view = await asyncio.to_thread(node.access.view, grant)
    try:
        outcome = await asyncio.wait_for(
            asyncio.to_thread(_run, view, query, node, deadline, max_results), timeout + 1
        )
    except TimeoutError:
        raise QueryLimit(f"the query ran out of time ({timeout:g} s); narrow it or add LIMIT") from None
    accept = request.headers.get("accept")
    if isinstance(outcome, bool):
        kind = _choose(accept, _RESULTS, "json")
        body, media = _boolean(outcome, kind)
        return _answer(request, node, caller, grant, body, media)
    variables, rows = outcome
    if variables is None:  # CONSTRUCT / DESCRIBE
        fmt = _choose(accept, _RDF, FORMATS[0])
        triples: list[ox.Triple] = rows
        body = fmt.render(triples, Page(node.vocab, node.namespace, node.namespace + "sparql"))
        resources = tuple(sorted({t.subject.value for t in triples if isinstance(t.subject, ox.NamedNode)}))
        fields = tuple(sorted({t.predicate.value for t in triples}))
        return _answer(request, node, caller, grant, body, fmt.content_type, resources, fields)
    kind = _choose(accept, _RESULTS, "json")
    body, media = _solutions(variables, rows, kind)
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


def _term_json(term: Any) -> dict[str, str]:
    if isinstance(term, ox.NamedNode):
        return {"type": "uri", "value": term.value}
    if isinstance(term, ox.BlankNode):
        return {"type": "bnode", "value": term.value}
    if isinstance(term, ox.Literal):
        out = {"type": "literal", "value": term.value}
        if term.language:
            out["xml:lang"] = term.language
        elif term.datatype.value != "http://www.w3.org/2001/XMLSchema#string":
            out["datatype"] = term.datatype.value
        return out
    return {"type": "triple", "value": str(term)}


def _boolean(value: bool, kind: str) -> tuple[bytes, str]:
    if kind == "json":
        return orjson.dumps({"head": {}, "boolean": value}), "application/sparql-results+json"
    if kind == "xml":
        text = "true" if value else "false"
        return (
            f'<?xml version="1.0"?><sparql xmlns="http://www.w3.org/2005/sparql-results#"><head/>'
            f"<boolean>{text}</boolean></sparql>"
        ).encode(), "application/sparql-results+xml"
    return (b"_askResult\r\n" + (b"true" if value else b"false") + b"\r\n"), (
        "text/csv; charset=utf-8" if kind == "csv" else "text/tab-separated-values; charset=utf-8"
    )


def _solutions(variables: Sequence[str], rows: Sequence[Any], kind: str) -> tuple[bytes, str]:
    if kind == "json":
        bindings = [{v: _term_json(row[v]) for v in variables if row[v] is not None} for row in rows]
        body = {"head": {"vars": list(variables)}, "results": {"bindings": bindings}}
        return orjson.dumps(body), "application/sparql-results+json"
    if kind == "xml":
        parts = ['<?xml version="1.0"?><sparql xmlns="http://www.w3.org/2005/sparql-results#"><head>']
        parts += [f"<variable name={quoteattr(v)}/>" for v in variables]
        parts.append("</head><results>")
        for row in rows:
            parts.append("<result>")
            for v in variables:
                term = row[v]
                if term is not None:
                    parts.append(f"<binding name={quoteattr(v)}>{_term_xml(term)}</binding>")
            parts.append("</result>")
        parts.append("</results></sparql>")
        return "".join(parts).encode(), "application/sparql-results+xml"
    if kind == "csv":
        lines = [",".join(variables)]
        for row in rows:
            lines.append(",".join(_csv(row[v]) for v in variables))
        return ("\r\n".join(lines) + "\r\n").encode(), "text/csv; charset=utf-8"
    lines = ["\t".join("?" + v for v in variables)]
    for row in rows:
        lines.append("\t".join("" if row[v] is None else str(row[v]) for v in variables))
    return ("\n".join(lines) + "\n").encode(), "text/tab-separated-values; charset=utf-8"


def _term_xml(term: Any) -> str:
    if isinstance(term, ox.NamedNode):
        return f"<uri>{escape(term.value)}</uri>"
    if isinstance(term, ox.BlankNode):
        return f"<bnode>{escape(term.value)}</bnode>"
    if isinstance(term, ox.Literal):
        if term.language:
            return f"<literal xml:lang={quoteattr(term.language)}>{escape(term.value)}</literal>"
        if term.datatype.value != "http://www.w3.org/2001/XMLSchema#string":
            return f"<literal datatype={quoteattr(term.datatype.value)}>{escape(term.value)}</literal>"
        return f"<literal>{escape(term.value)}</literal>"
    return f"<literal>{escape(str(term))}</literal>"


def _csv(term: Any) -> str:
    if term is None:
        return ""
    text = (
        term.value
        if isinstance(term, ox.NamedNode | ox.Literal)
        else "_:" + term.value
        if isinstance(term, ox.BlankNode)
        else str(term)
    )
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
