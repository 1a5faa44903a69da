"""The hot path of ``/sparql``: a point look-up by a caller already known, answered early.

A point look-up (``gateway.sparql.point``: one triple pattern about one IRI) is answered
in the node itself in a few tens of microseconds; served through the full application
it would also pay FastAPI's and Starlette's layers, three parsings of the query string,
the request wrapper and the pool's hand-off: most of its time. ``SparqlHotPath`` sits in
front of them all (as ``gateway.http.hot.HotPath`` does) and answers it exactly as
``gateway.http.sparql.sparql`` would when everything it needs is at hand: the same
caller (a bearer token verified before and not expired, ``known_caller``), grant, label
graphs of the same snapshot, evaluation (``answer_here``: every request's query is
evaluated, nothing is cached), audit record (``audited``, ``record``) and response
(``answered``).

Only ``GET /sparql?query=...`` with that one parameter, and ``POST /sparql`` of an
``application/sparql-query`` body with no query string, are tried. Anything else is
passed on untouched to the application, which decides and, when it refuses, says why:
no, a new, an expired or several tokens; delegation evidence (it widens the grant);
another query shape (and so ``SERVICE``, ``FROM``, a malformed query: the shape admits
none of them); an ``Accept`` no result format fits; labels not yet made or moving; a
grant the labels do not cover; a residue not yet made; a large answer; an audit log
refusing reads. A POST's body, once read here, is handed on as it came.
"""

from __future__ import annotations

from urllib.parse import unquote

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import GatewayError
from gateway.http.hot import answer_or_pass, known_request
from gateway.http.respond import record
from gateway.http.sparql import answered, audited, dataset_in
from gateway.http.sparql_protocol import MAX_QUERY
from gateway.http.state import NodeState
from gateway.sparql.point import answer_here, parsed
from gateway.sparql.worker import Request as Job

__all__ = ["SparqlHotPath"]

_SPARQL_QUERY = b"application/sparql-query"


class SparqlHotPath:
    """ASGI middleware in front of the node's routes (see the module's docstring)."""

    def __init__(self, app: ASGIApp, state: NodeState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/sparql" and not scope.get("root_path"):
            method = scope["method"]
            if method == "GET":
                query = _get_query(scope["query_string"])
            elif method == "POST" and not scope["query_string"]:
                query, receive = await _posted_query(scope, receive)
            else:
                query = None
            if query is not None:
                response = answer_or_pass(lambda scope: self._answer(scope, query), scope)
                if response is not None:
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope, query: str) -> Response | None:
        """The application's answer to ``query``, or None where it must decide."""
        if not parsed(query)[0]:
            return None
        state = self.state
        known, pool = known_request(state, scope), state.queries
        if known is None or pool is None:
            return None
        caller, accept, _, request_id = known
        snapshot = pool.current()
        if snapshot is None or not snapshot.labels.state:
            return None
        node = state.node
        grant = node.access.grant(caller)
        view = node.access.labelled_at(snapshot.labels, grant)
        graphs = dataset_in(view, snapshot) if view is not None else None
        if graphs is None:
            return None
        job = Job(
            snapshot.folder,
            graphs,
            query,
            accept.decode("latin-1") if accept is not None else None,
            state.sparql_limits[1],
            node.namespace,
        )
        here = answer_here(pool.store, job, snapshot.labels, pool.prefixes)
        if here is None:
            return None
        head, body = here
        media: str = head["media"]
        response = answered(body, media)
        try:  # no read without its record, made last: a failure before it leaves none
            record(node.audit, scope, caller, audited(grant, body, media), request_id)
        except GatewayError:
            return None
        return response


def _get_query(query_string: bytes) -> str | None:
    """The query of a query string that holds exactly one parameter, ``query``, read as
    Starlette reads query parameters (``parse_qsl``: ``+`` is a space, then UTF-8
    percent-decoding, errors replaced); None for any other query string. Short ones are
    remembered decoded (a client sends the same few again and again)."""
    known = _DECODED.get(query_string)
    if known is not None:
        return known
    if not query_string.startswith(b"query=") or b"&" in query_string:
        return None
    query = unquote(query_string[6:].decode("latin-1").replace("+", " "), errors="replace")
    if len(query_string) <= _DECODED_TEXT:
        if len(_DECODED) >= _DECODED_MAX:
            _DECODED.clear()
        _DECODED[query_string] = query
    return query


#: query strings seen lately -> their query, decoded (at most a few megabytes)
_DECODED: dict[bytes, str] = {}
_DECODED_MAX, _DECODED_TEXT = 1024, 2048


async def _posted_query(scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
    """The query of an ``application/sparql-query`` POST of at most ``MAX_QUERY`` bytes,
    and what the application then receives: the body read here, then the rest as it comes."""
    ctype = length = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            ctype = value if ctype is None else ctype
        elif name == b"content-length":
            length = value if length is None else b"x"  # several: the application decides
    if ctype is None or ctype.partition(b";")[0].strip().lower() != _SPARQL_QUERY:
        return None, receive
    if length is None or not length.isdigit() or int(length) > MAX_QUERY:
        return None, receive
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, _replay(messages, receive)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    query = body.decode("utf-8", "replace") if len(body) <= MAX_QUERY else None
    return query, _replay(messages, receive)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` as if nothing had been read from it: ``messages`` first."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
