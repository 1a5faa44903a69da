"""The SPARQL 1.1 Protocol at ``/sparql``: the request, the result formats, the service description.

Query execution lives in ``gateway.http.sparql``; this module is what a standard client
sees of it:

- the request (SPARQL 1.1 Protocol §2.1): ``GET ?query=``, ``POST`` as
  ``application/sparql-query`` or as a form; exactly one query; ``default-graph-uri`` and
  ``named-graph-uri`` are refused (the caller's view is the dataset);
- the results, chosen by ``Accept`` (RFC 9110 §12.5.1) and written by
  ``gateway.formats.results``: SELECT and ASK in SPARQL 1.1 Query Results JSON, XML, CSV
  and TSV; CONSTRUCT and DESCRIBE in Turtle, JSON-LD, N-Triples, RDF/XML (what
  SPARQLWrapper and rdflib ask for by default) and N-Quads;
- ``GET /sparql`` without a query: the SPARQL 1.1 Service Description (§3), negotiated
  among the graph formats.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import pyoxigraph as ox
from starlette.requests import Request

from gateway.errors import BadRequest
from gateway.formats import FORMATS, Format, Page
from gateway.formats.results import RDF_FORMATS, RESULT_FORMATS, boolean, choose, solutions
from gateway.http.openapi import ANY, Body, Operation, Reply, query
from gateway.node import Node

__all__ = [
    "GRAPH_TYPES",
    "MAX_QUERY",
    "RESULT_TYPES",
    "SPARQL_GET",
    "SPARQL_POST",
    "graph_format",
    "query_text",
    "result_kind",
    "service_description",
    "write_outcome",
]

MAX_QUERY = 64 * 1024

GRAPH_TYPES = RDF_FORMATS
RESULT_TYPES = RESULT_FORMATS
_TURTLE = FORMATS[0]


# -- the request ---------------------------------------------------------------------


async def query_text(request: Request) -> str | None:
    """The one query of the request; None for a GET without one (the service description)."""
    if request.method == "GET":
        values = request.query_params.getlist("query")
        if not values and not request.query_params:
            return None
    else:
        values = await _posted(request)
    if len(values) != 1 or not values[0].strip():
        raise BadRequest("give exactly one query parameter")
    if any(k in request.query_params for k in ("default-graph-uri", "named-graph-uri")):
        raise BadRequest(
            "default-graph-uri and named-graph-uri are not supported: the caller's view is the dataset"
        )
    return values[0]


async def _posted(request: Request) -> list[str]:
    body = await request.body()
    if len(body) > MAX_QUERY:
        raise BadRequest(f"the query is larger than {MAX_QUERY} bytes")
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    text = body.decode("utf-8", "replace")
    if ctype == "application/sparql-query":
        return [text]
    if ctype == "application/x-www-form-urlencoded":
        return [v for k, v in parse_qsl(text) if k == "query"]
    raise BadRequest("POST a query as application/sparql-query or as a form with a query field")


# -- negotiation ---------------------------------------------------------------------


def result_kind(accept: str | None) -> str:
    kind: str = choose(accept, RESULT_TYPES, "json")
    return kind


def graph_format(accept: str | None) -> Format:
    fmt: Format = choose(accept, GRAPH_TYPES, _TURTLE)
    return fmt


def write_outcome(
    outcome: Any, accept: str | None, node: Node
) -> tuple[bytes, str, tuple[str, ...], tuple[str, ...]]:
    """A query's outcome (a boolean, or variables and rows; variables None for a graph) in
    the format ``accept`` asks for: body, content type, and for a graph its subjects and
    predicates (the audit log's resources and fields)."""
    if isinstance(outcome, bool):
        body, media = boolean(outcome, result_kind(accept))
        return body, media, (), ()
    variables, rows = outcome
    if variables is not None:
        body, media = solutions(variables, rows, result_kind(accept))
        return body, media, (), ()
    fmt = graph_format(accept)
    body = fmt.render(rows, Page(node.vocab, node.namespace, node.namespace + "sparql"))
    resources = tuple(sorted({t.subject.value for t in rows if isinstance(t.subject, ox.NamedNode)}))
    fields = tuple(sorted({t.predicate.value for t in rows}))
    return body, fmt.content_type, resources, fields


# -- the service description (SPARQL 1.1 Service Description §3) ---------------------------

_SD = "http://www.w3.org/ns/sparql-service-description#"
_FORMATS_NS = "http://www.w3.org/ns/formats/"
_RDF_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
#: result formats by their W3C format IRIs (https://www.w3.org/ns/formats/)
_FORMAT_IRIS = (
    "SPARQL_Results_JSON",
    "SPARQL_Results_XML",
    "SPARQL_Results_CSV",
    "SPARQL_Results_TSV",
    "Turtle",
    "JSON-LD",
    "N-Triples",
    "RDF_XML",
    "N-Quads",
)


def service_description(node: Node, endpoint: str) -> list[ox.Triple]:
    """What the endpoint is: SPARQL 1.1 Query over one default graph, the caller's view,
    which merges the node's sources (``sd:UnionDefaultGraph``) and is described by the
    node's VoID dataset. ``SERVICE`` is refused, so ``sd:BasicFederatedQuery`` is absent."""
    T, N = ox.Triple, ox.NamedNode
    service, dataset, graph = N(endpoint), ox.BlankNode(), ox.BlankNode()
    void = N(node.namespace + ".well-known/void#dataset")
    out = [
        T(service, _RDF_TYPE, N(_SD + "Service")),
        T(service, N(_SD + "endpoint"), service),
        T(service, N(_SD + "supportedLanguage"), N(_SD + "SPARQL11Query")),
        T(service, N(_SD + "feature"), N(_SD + "UnionDefaultGraph")),
        T(service, N(_SD + "defaultDataset"), dataset),
        T(dataset, _RDF_TYPE, N(_SD + "Dataset")),
        T(dataset, N("http://www.w3.org/2000/01/rdf-schema#seeAlso"), void),
        T(dataset, N(_SD + "defaultGraph"), graph),
        T(graph, _RDF_TYPE, N(_SD + "Graph")),
        T(graph, N("http://rdfs.org/ns/void#inDataset"), void),
    ]
    out += [T(service, N(_SD + "resultFormat"), N(_FORMATS_NS + f)) for f in _FORMAT_IRIS]
    return out


# -- OpenAPI declarations of /sparql ---------------------------------------------------------

_RESULTS_REPLY = Reply(
    "SELECT/ASK results (SPARQL 1.1 Query Results), a CONSTRUCT/DESCRIBE graph, or, for a GET "
    "without a query, the service description",
    {**dict.fromkeys(RESULT_TYPES, ANY), **dict.fromkeys(GRAPH_TYPES, ANY)},
)
_ERRORS = (400, 403, 406)
_TEXT = {"type": "string", "pattern": r"\S"}
_QUERY = query("query", "a SPARQL 1.1 query; without one, GET answers the service description", _TEXT)
SPARQL_GET = Operation(
    "SPARQL 1.1 Protocol query over the caller's view (or the service description)",
    "The caller's view is the one default graph; SERVICE is refused; time and result limits apply.",
    ("sparql",),
    parameters=(_QUERY,),
    replies={200: _RESULTS_REPLY},
    errors=_ERRORS,
    operation_id="sparqlGet",
)
SPARQL_POST = Operation(
    "SPARQL 1.1 Protocol query by POST (directly or as a form)",
    tags=("sparql",),
    body=Body(
        {
            "application/sparql-query": _TEXT,
            "application/x-www-form-urlencoded": {
                "type": "object",
                "required": ["query"],
                "properties": {"query": _TEXT},
            },
        }
    ),
    replies={200: _RESULTS_REPLY},
    errors=_ERRORS,
    operation_id="sparqlPost",
)
