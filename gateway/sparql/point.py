"""A point look-up (one triple pattern about one IRI) answered in the node itself.

Every other query runs in a worker process that is killed at its time limit, because a
query cannot be interrupted inside pyoxigraph. A point look-up needs no such guard: its
only pattern has a constant subject, so it reads that subject's triples in each graph
of the caller's dataset (a few index look-ups) and nothing else, whatever the data; this
node reads at most ``ROWS`` of them here and leaves a larger answer to a worker. Its
cost is bounded by its shape, so answering it on the event loop is as safe as serving a
resource, and it saves the round trip to a worker (about as long as the rest of the
request). The shape is recognised by a strict pattern over the whole query text:
``SELECT`` of variables (or ``*``), an optional ``WHERE``, and one triple pattern whose
subject is an IRI and whose predicate and object are variables or IRIs; anything else,
however harmless, goes to a worker.

The query reads the node's live store over the same label graphs the worker would read
in its snapshot, and only while they are the same: the snapshot's labels are the
store's and no writer is at work, both before and after the query (pyoxigraph evaluates
a query over one version of the store). The answer's bytes are the worker's
(``render_solutions``, rows in canonical order).
"""

from __future__ import annotations

import re
from typing import Any

import pyoxigraph as ox

from gateway.errors import NotAcceptable
from gateway.sparql.worker import Request, render_solutions
from gateway.store.local import Labels, Store

__all__ = ["ROWS", "answer_here", "is_point"]

#: rows a point look-up may have to be answered here
ROWS = 1000
_IRI = r'<[^<>"{}|^`\\\x00-\x20]*>'
_VAR = r"[?$][A-Za-z0-9_]+"
_TERM = rf"(?:{_VAR}|{_IRI})"
_POINT = re.compile(
    rf"\s*SELECT\s+(?:\*|{_VAR}(?:\s+{_VAR})*)\s*(?:WHERE\s*)?\{{\s*{_IRI}\s+{_TERM}\s+{_TERM}\s*\.?\s*\}}\s*",
    re.IGNORECASE,
)


def is_point(query: str) -> bool:
    """Whether ``query`` is a point look-up (the module's docstring says which)."""
    return _POINT.fullmatch(query) is not None


def answer_here(
    store: Store, request: Request, labels: Labels, prefixes: dict[str, str]
) -> tuple[dict[str, Any], bytes] | None:
    """The worker's answer to ``request`` (a point look-up over ``labels``' graphs),
    computed here; None whenever a worker must answer (another shape, labels that have
    moved on, a writer at work, more than ``ROWS`` rows, an error the worker explains)."""
    if request.graphs is None or not is_point(request.query) or not _same(store, labels):
        return None
    try:
        result = store.query(
            request.query,
            [ox.NamedNode(g) for g in request.graphs],
            base_iri=request.base_iri,
            prefixes=prefixes,
        )
        if not isinstance(result, ox.QuerySolutions):
            return None
        head, body = render_solutions(result, request.accept, min(ROWS, request.max_results), True)
    except (SyntaxError, ValueError, OSError, NotAcceptable):
        return None
    if head["status"] != "ok" or not _same(store, labels):
        return None
    return head, body


def _same(store: Store, labels: Labels) -> bool:
    return store.labels() is labels and not store.writing()
