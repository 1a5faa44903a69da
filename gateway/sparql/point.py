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
(``render_rows``, rows in canonical order).

Parsing and planning the query costs pyoxigraph more than evaluating it (about 25 of
35 µs), so the commonest form, explicit distinct variables each bound by the pattern
and absolute ASCII IRIs, is evaluated here as what SPARQL 1.1 §18.5 makes of it: the
pattern's matches in each graph of the dataset (the default graph is their union, a
triple held by two graphs matching twice, as pyoxigraph counts it), projected onto the
selected variables. Every request is evaluated; any other form of the shape is given
to pyoxigraph's query engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import pyoxigraph as ox

from gateway.errors import NotAcceptable
from gateway.formats.results import RESULT_FORMATS, choose
from gateway.sparql.worker import Request, render_rows, render_solutions
from gateway.store.local import Labels, Store

__all__ = ["ROWS", "Lookup", "answer_here", "is_point", "lookup", "parsed"]

#: rows a point look-up may have to be answered here
ROWS = 1000
_IRI = r'<[^<>"{}|^`\\\x00-\x20]*>'
_VAR = r"[?$][A-Za-z0-9_]+"
_TERM = rf"(?:{_VAR}|{_IRI})"
_POINT = re.compile(
    rf"\s*SELECT\s+(?:\*|{_VAR}(?:\s+{_VAR})*)\s*(?:WHERE\s*)?\{{\s*{_IRI}\s+{_TERM}\s+{_TERM}\s*\.?\s*\}}\s*",
    re.IGNORECASE,
)


_IRI_VALUE = r'<([^<>"{}|^`\\\x00-\x20]*)>'
_LOOKUP = re.compile(
    rf"\s*SELECT\s+({_VAR}(?:\s+{_VAR})*)\s*(?:WHERE\s*)?\{{\s*{_IRI_VALUE}\s+({_TERM})\s+({_TERM})\s*\.?\s*\}}\s*",
    re.IGNORECASE,
)


def is_point(query: str) -> bool:
    """Whether ``query`` is a point look-up (the module's docstring says which)."""
    return _POINT.fullmatch(query) is not None


@dataclass(frozen=True, slots=True)
class Lookup:
    """A point look-up evaluated here: the subject, a constant predicate and object (or
    None), and which of the matching quads' terms each selected variable takes."""

    variables: tuple[str, ...]
    subject: ox.NamedNode
    predicate: ox.NamedNode | None
    object: ox.NamedNode | None
    terms: tuple[str, ...]  # "predicate" or "object", per variable

    def rows(self, store: ox.Store, graphs: tuple[str, ...], limit: int) -> list[tuple[Any, ...]] | None:
        """The solutions, by position; None beyond ``limit``."""
        if len(self.terms) == 1:
            one = attrgetter(self.terms[0])
            pick: Callable[[ox.Quad], tuple[Any, ...]] = lambda quad: (one(quad),)  # noqa: E731
        else:
            pick = attrgetter(*self.terms)
        s, p, o = self.subject, self.predicate, self.object
        out: list[tuple[Any, ...]] = []
        for graph in graphs:
            out.extend(map(pick, store.quads_for_pattern(s, p, o, ox.NamedNode(graph))))
            if len(out) > limit:
                return None
        return out


def lookup(query: str) -> Lookup | None:
    """The point look-up ``query`` as a ``Lookup``, when it has the form evaluated here
    (the module's docstring says which); None for every other query."""
    match = _LOOKUP.fullmatch(query)
    if match is None:
        return None
    variables = tuple(v[1:] for v in match[1].split())
    try:
        subject = _iri(match[2])
        bound = {"predicate": _term(match[3]), "object": _term(match[4])}
    except ValueError:
        return None
    names = {term: kind for kind, term in bound.items() if isinstance(term, str)}
    if len(set(variables)) != len(variables) or len(names) != sum(isinstance(t, str) for t in bound.values()):
        return None  # a variable selected twice (a syntax error), or in both places
    if not all(v in names for v in variables):
        return None  # an unbound variable
    predicate, obj = (None if isinstance(t, str) else t for t in bound.values())
    return Lookup(variables, subject, predicate, obj, tuple(names[v] for v in variables))


#: the point look-ups asked lately, parsed (a client asks the same few again and again):
#: parsing only, each request's query is still evaluated; short texts only, so this holds
#: at most about a megabyte
_PARSED: dict[str, Lookup | None] = {}
_PARSED_MAX, _PARSED_TEXT = 1024, 1024


def parsed(query: str) -> tuple[bool, Lookup | None]:
    """(``is_point(query)``, ``lookup(query)``), remembered for a short point look-up."""
    try:
        return True, _PARSED[query]
    except KeyError:
        pass
    if not is_point(query):
        return False, None
    found = lookup(query)
    if len(query) <= _PARSED_TEXT:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[query] = found
    return True, found


def _iri(text: str) -> ox.NamedNode:
    if not text.isascii():
        raise ValueError("evaluated by the query engine")
    return ox.NamedNode(text)  # a relative IRI is a ValueError: the engine resolves it


def _term(text: str) -> ox.NamedNode | str:
    return text[1:] if text[0] in "?$" else _iri(text[1:-1])


def answer_here(
    store: Store, request: Request, labels: Labels, prefixes: dict[str, str]
) -> tuple[dict[str, Any], bytes] | None:
    """The worker's answer to ``request`` (a point look-up over ``labels``' graphs),
    computed here; None whenever a worker must answer (another shape, labels that have
    moved on, a writer at work, more than ``ROWS`` rows, an error the worker explains)."""
    point, found = parsed(request.query)
    if request.graphs is None or not point or not _same(store, labels):
        return None
    limit = min(ROWS, request.max_results)
    try:
        if found is not None:
            kind = choose(request.accept, RESULT_FORMATS, "json")
            rows = found.rows(store.label_reader().ox, request.graphs, limit)
            if rows is None:
                return None
            head, body = render_rows(list(found.variables), rows, kind, True, bound=True)
        else:
            result = store.query(
                request.query,
                [ox.NamedNode(g) for g in request.graphs],
                base_iri=request.base_iri,
                prefixes=prefixes,
            )
            if not isinstance(result, ox.QuerySolutions):
                return None
            head, body = render_solutions(result, request.accept, limit, True)
    except (SyntaxError, ValueError, OSError, NotAcceptable):
        return None
    if head["status"] != "ok" or not _same(store, labels):
        return None
    return head, body


def _same(store: Store, labels: Labels) -> bool:
    return store.labels() is labels and not store.writing()
