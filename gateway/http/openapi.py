"""OpenAPI 3.1 documents for a node and for the registry, built from their route tables.

The routes are plain Starlette ``Route``s (the hot ones pay none of FastAPI's per-request
machinery), so FastAPI describes none of them by itself. Instead each endpoint carries
its own declaration, next to it (``@describe(get=Operation(...))``), and ``install`` makes
``app.openapi()`` assemble the document from the routes the app really has: one source
of truth, so the document can neither list a route the app lacks nor miss one it has
(``/docs`` shows it). Errors are RFC 9457 problem+json whose ``code`` is one of the
error tree's stable codes (``gateway.errors``), listed as an enum.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route

from gateway.errors import GatewayError
from gateway.http.problems import PROBLEM, STARLETTE_CODES

__all__ = [
    "ANY",
    "EVIDENCE",
    "FORMAT",
    "IRI_SCHEMA",
    "JSON_OBJECT",
    "RDF_TYPES",
    "Body",
    "Operation",
    "Reply",
    "describe",
    "header",
    "install",
    "problem_codes",
    "query",
    "rdf",
    "signed_token",
]

Schema = Mapping[str, Any]
ANY: Schema = {}
JSON_OBJECT: Schema = {"type": "object"}
#: an http(s) IRI as the body routes accept it (RFC 3987; no spaces, controls, '<>' or bad
#: escapes): a subset of what they accept, so generated examples are all valid
IRI_SCHEMA: Schema = {
    "type": "string",
    "pattern": r"^https?://[A-Za-z0-9._~-]+(:[0-9]{1,5})?(/([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})*)*$",
}
#: what the resource, collection and catalog routes answer in (gateway.formats)
RDF_TYPES = ("text/turtle", "application/ld+json", "application/n-triples", "text/html")


@dataclass(frozen=True, slots=True)
class Body:
    """A request body: media type -> schema."""

    content: Mapping[str, Schema]
    required: bool = True
    description: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful (or otherwise non-problem) response."""

    description: str
    content: Mapping[str, Schema] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Operation:
    summary: str
    description: str = ""
    tags: tuple[str, ...] = ()
    #: "required", "optional" (more is shown with a token) or "none"; an open node has none
    auth: str = "required"
    parameters: tuple[Schema, ...] = ()
    body: Body | None = None
    replies: Mapping[int, Reply] = field(default_factory=dict)
    #: statuses answered with application/problem+json (401 is added where auth applies)
    errors: tuple[int, ...] = ()
    operation_id: str = ""


#: endpoint -> {method: Operation}; weak, so closures made per app are forgotten with it
_DECLARED: weakref.WeakKeyDictionary[Callable[..., Any], dict[str, Operation]] = weakref.WeakKeyDictionary()

_F = Callable[..., Any]


def describe(**operations: Operation) -> Callable[[_F], _F]:
    """Declare an endpoint's operations by lower-case HTTP method."""

    def mark(endpoint: _F) -> _F:
        _DECLARED[endpoint] = dict(operations)
        return endpoint

    return mark


def query(name: str, description: str, schema: Schema | None = None, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": dict(schema or {"type": "string"}),
    }


def header(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


#: the read routes' common parameters: the format override and iSHARE delegation evidence
FORMAT = query(
    "format",
    "a format instead of Accept",
    {"type": "string", "enum": ["turtle", "jsonld", "ntriples", "html"]},
)
EVIDENCE = header(
    "delegation_evidence",
    "iSHARE delegation evidence (a delegation_token from an authorization registry the node trusts); "
    "the older Delegation-Evidence is read too",
)


def rdf(description: str) -> Reply:
    """A 200 in one of the node's RDF formats, negotiated (``Accept`` or ``?format=``)."""
    return Reply(
        description,
        {t: ANY for t in RDF_TYPES},
        {
            "ETag": "the representation's entity tag (If-None-Match gives 304)",
            "dsgo-withheld-fields": "how many fields the caller's policy withholds (a count)",
            "dsgo-withheld": "which: the fields' <IRI>s, and * if fields the policy does not name may be too",
        },
    )


def signed_token(claim: str, description: str) -> Reply:
    """An iSHARE signed answer: ``{"<claim>": JWT}`` (exp = iat + 30, aud = requester)."""
    schema = {
        "type": "object",
        "required": [claim],
        "properties": {claim: {"type": "string", "contentMediaType": "application/jwt"}},
    }
    return Reply(description, {"application/json": schema})


def problem_codes() -> list[str]:
    """Every stable error code a response can carry: the error tree's, and the edge's own."""
    codes = set(STARLETTE_CODES)
    stack: list[type[GatewayError]] = [GatewayError]
    while stack:
        cls = stack.pop()
        codes.add(cls.code)
        stack.extend(cls.__subclasses__())
    return sorted(codes)


def _components(secured: bool) -> dict[str, Any]:
    problem = {
        "type": "object",
        "description": "RFC 9457 problem details; OAuth errors also carry error and error_description",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string", "enum": problem_codes()},
            "error": {"type": "string"},
            "error_description": {"type": "string"},
        },
    }
    out: dict[str, Any] = {"schemas": {"Problem": problem}}
    if secured:
        out["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "an access token from POST /connect/token (iSHARE client assertion)",
            }
        }
    return out


_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_REASONS = {
    304: "Not modified",
    400: "Bad request",
    401: "No, an expired or a foreign bearer token",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "None of the accepted media types can be produced",
    502: "A peer or the registry answered wrongly",
    503: "The registry cannot be reached (fail closed)",
}


def _responses(op: Operation, secured: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, reply in op.replies.items():
        entry: dict[str, Any] = {"description": reply.description}
        if reply.content:
            entry["content"] = {media: {"schema": dict(schema)} for media, schema in reply.content.items()}
        if reply.headers:
            entry["headers"] = {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in reply.headers.items()
            }
        out[str(status)] = entry
    errors = set(op.errors) | ({401} if secured and op.auth != "none" else set())
    for status in sorted(errors):
        out[str(status)] = {
            "description": _REASONS.get(status, "Error"),
            "content": {PROBLEM: {"schema": _PROBLEM_REF}},
        }
    return out


def _path_parameters(route: Route) -> Iterator[dict[str, Any]]:
    declined = getattr(route, "reserved", None)  # a catch-all says which first segments it declines
    for name, convertor in route.param_convertors.items():
        schema: dict[str, Any] = {
            "type": "integer" if type(convertor).__name__ == "IntegerConvertor" else "string"
        }
        if declined:
            schema["minLength"] = 1
            names = "|".join(re.escape(n) for n in sorted(declined) if n)
            schema["not"] = {"pattern": f"^({names})(/|$)"}
        yield {"name": name, "in": "path", "required": True, "schema": schema}


def _operation(op: Operation, route: Route, method: str, secured: bool, used: set[str]) -> dict[str, Any]:
    derived = f"{method}{re.sub(r'[^A-Za-z0-9]+', '_', route.path)}".rstrip("_")
    operation_id = op.operation_id if op.operation_id and op.operation_id not in used else derived
    used.add(operation_id)
    out: dict[str, Any] = {
        "summary": op.summary,
        "operationId": operation_id,
        "parameters": [*_path_parameters(route), *(dict(p) for p in op.parameters)],
        "responses": _responses(op, secured),
    }
    if op.description:
        out["description"] = op.description
    if op.tags:
        out["tags"] = list(op.tags)
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body.required,
            "content": {media: {"schema": dict(schema)} for media, schema in op.body.content.items()},
            **({"description": op.body.description} if op.body.description else {}),
        }
    if secured:
        out["security"] = {"required": [{"bearer": []}], "optional": [{"bearer": []}, {}]}.get(op.auth, [])
    return out


def document(app: FastAPI, secured: bool, description: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s declared routes."""
    paths: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for route in _documented(app):
        template = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)
        item = paths.setdefault(template, {})
        for method, op in _DECLARED.get(route.endpoint, {}).items():
            if route.methods is None or method.upper() in route.methods:
                item[method] = _operation(op, route, method, secured, used)
    info = {"title": app.title, "version": app.version, "description": description}
    return {"openapi": "3.1.0", "info": info, "paths": paths, "components": _components(secured)}


def _documented(app: FastAPI) -> list[Route]:
    """Routes with a declaration, the first of each path and method (as Starlette matches)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for route in app.router.routes:
        if isinstance(route, Route) and route.include_in_schema and route.endpoint in _DECLARED:
            keys = {(route.path, m) for m in _DECLARED[route.endpoint]}
            if not keys & seen:
                out.append(route)
            seen |= keys
    return out


def install(app: FastAPI, secured: bool, description: str = "") -> None:
    """Make ``app.openapi()`` (and so ``/openapi.json`` and ``/docs``) describe the routes."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, secured, description)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
