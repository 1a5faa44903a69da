"""A SPARQL query worker: one process, one query at a time, killed when it runs too long.

``python -m gateway.sparql.worker`` reads requests on stdin and answers on stdout, each
framed as a 4-byte big-endian length and a body. A request (pickled by its parent,
``gateway.sparql.pool``) names a snapshot of the node's store, the label graphs the
caller's grant sees (or, for a grant the labels do not cover, its rules: the worker
then materialises that view from the snapshot itself), the query, the ``Accept``
header and the result limit. The answer is a JSON header (status, media type, the
resources and fields of a graph result for the audit log, or an error code and
detail) followed by the body bytes, rendered here so the node's event loop only
forwards them.

A snapshot is an on-disk store's checkpoint, opened read-only (``Store.read_only``;
nothing writes it), or the label graphs of an in-memory store as N-Quads, loaded into
this process's own memory. The worker ignores SIGINT (Ctrl-C reaches the whole process
group; the node stops its workers itself) and dies with its parent (Linux
``PR_SET_PDEATHSIG``), so no query outlives the node.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import pickle
import signal
import struct
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pyoxigraph as ox

from gateway.errors import NotAcceptable
from gateway.formats import FORMATS, Page
from gateway.formats.results import RDF_FORMATS, RESULT_FORMATS, boolean, choose, table
from gateway.sparql.text import order_matters

__all__ = ["Request", "main", "read_frame", "render_rows", "render_solutions", "write_frame"]

_LENGTH = struct.Struct(">I")
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class Request:
    snapshot: str  # a folder: an on-disk checkpoint, or one holding labels.nq
    graphs: tuple[str, ...] | None  # the label graphs of the dataset; None: ``rules`` decide
    query: str
    accept: str | None
    max_results: int
    base_iri: str
    rules: Any = None  # a Grant the labels do not cover, materialised here
    view_key: tuple[object, ...] = ()


def read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = _LENGTH.unpack(head)
    body = stream.read(size)
    return body if len(body) == size else None


def write_frame(stream: BinaryIO, *parts: bytes) -> None:
    stream.write(_LENGTH.pack(sum(len(p) for p in parts)))
    for part in parts:
        stream.write(part)
    stream.flush()


class _Worker:
    def __init__(self, prefixes: dict[str, str]) -> None:
        self.prefixes = prefixes
        self.folder = ""
        self.store: ox.Store | None = None
        self.views: OrderedDict[tuple[object, ...], ox.Store] = OrderedDict()
        self._vocab: Any = None

    def open(self, folder: str) -> ox.Store:
        if folder != self.folder or self.store is None:
            self.store, self.views = None, OrderedDict()  # the previous snapshot is released first
            nquads = Path(folder) / "labels.nq"
            if nquads.exists():
                store = ox.Store()  # parse keeps blank node names; a store's loader would not
                store.bulk_extend(ox.parse(path=str(nquads), format=ox.RdfFormat.N_QUADS))
            else:
                store = ox.Store.read_only(folder)
            self.store, self.folder = store, folder
        return self.store

    def answer(self, request: Request) -> tuple[dict[str, Any], bytes]:
        store = self.open(request.snapshot)
        ordered = order_matters(request.query)
        try:
            if request.graphs is not None and not ordered:
                result = store.query(
                    request.query,
                    base_iri=request.base_iri,
                    prefixes=self.prefixes,
                    default_graph=[ox.NamedNode(g) for g in request.graphs],
                    named_graphs=[],
                )
            else:
                view = self.canonical(store, request)
                result = view.query(request.query, base_iri=request.base_iri, prefixes=self.prefixes)
            return self.render(result, request, canonical=not ordered)
        except SyntaxError as exc:
            return _error("bad_request", f"the query does not parse: {exc.msg or exc}")
        except NotAcceptable as exc:
            return _error("not_acceptable", exc.detail)
        except (ValueError, OSError) as exc:
            return _error("bad_request", f"the query failed: {exc}")

    def render(self, result: Any, request: Request, canonical: bool) -> tuple[dict[str, Any], bytes]:
        """The answer's bytes; ``canonical``: solutions or triples in a canonical order
        (the order they were found in shows how the data was stored, not what it is)."""
        if isinstance(result, ox.QueryBoolean):
            body, media = boolean(bool(result), choose(request.accept, RESULT_FORMATS, "json"))
            return {"status": "ok", "media": media}, body
        if isinstance(result, ox.QuerySolutions):
            return render_solutions(result, request.accept, request.max_results, canonical)
        fmt = choose(request.accept, RDF_FORMATS, FORMATS[0])
        triples = _rows(result, request.max_results)
        if triples is None:
            return _too_many(request.max_results)
        if canonical:
            triples.sort(key=str)
        body = fmt.render(triples, Page(self.vocab(), request.base_iri, request.base_iri + "sparql"))
        resources = sorted({t.subject.value for t in triples if isinstance(t.subject, ox.NamedNode)})
        fields = sorted({t.predicate.value for t in triples})
        return {"status": "ok", "media": fmt.content_type, "resources": resources, "fields": fields}, body

    def vocab(self) -> Any:
        if self._vocab is None:
            from gateway.vocab import load_vocab

            self._vocab = load_vocab()
        return self._vocab

    def canonical(self, store: ox.Store, request: Request) -> ox.Store:
        """The caller's view as a store of its own, filled in a canonical order, for a
        query whose answer depends on the order solutions are found in: the label graphs
        it sees (or, for a grant they do not cover, its own decisions) copied here and
        kept for the next such query. Costs memory the size of the view, while it lasts."""
        key = (request.snapshot, request.graphs, *request.view_key)
        view = self.views.get(key)
        if view is None:
            quads = _decided(store, request) if request.graphs is None else _copied(store, request.graphs)
            quads.sort(key=str)
            view = ox.Store()
            view.extend(quads)
            self.views[key] = view
            while len(self.views) > 1:
                self.views.popitem(last=False)
        return view


def render_solutions(
    result: ox.QuerySolutions, accept: str | None, limit: int, canonical: bool
) -> tuple[dict[str, Any], bytes]:
    """A SELECT answer's header and bytes, at most ``limit`` rows; ``canonical``: the rows
    sorted (the order they were found in shows how the data was stored). ``NotAcceptable``
    before any row is read when ``accept`` takes no result format."""
    variables = [v.value for v in result.variables]
    kind = choose(accept, RESULT_FORMATS, "json")
    values = [tuple(row) for row in itertools.islice(result, limit + 1)]  # terms read once, by position
    if len(values) > limit:
        return _too_many(limit)
    return render_rows(variables, values, kind, canonical)


def render_rows(
    variables: list[str], values: list[tuple[Any, ...]], kind: str, canonical: bool, bound: bool = False
) -> tuple[dict[str, Any], bytes]:
    """``render_solutions`` of solutions read already, by position, in result format
    ``kind``; ``bound``: every variable is bound in every row (a point look-up's)."""
    if canonical and len(values) > 1:
        values.sort(key=_canonical_pair if bound and len(variables) == 2 else _canonical)
    body, media = table(variables, values, kind, bound)
    return {"status": "ok", "media": media}, body


def _canonical(terms: tuple[Any, ...]) -> list[str]:
    """A row's place in the canonical order: its terms in N-Triples form, unbound first."""
    return ["" if t is None else str(t) for t in terms]


def _canonical_pair(terms: tuple[Any, Any]) -> tuple[str, str]:
    """``_canonical`` of a row of two bound terms (the same order, a third of its cost)."""
    return str(terms[0]), str(terms[1])


def _copied(store: ox.Store, graphs: tuple[str, ...]) -> list[ox.Quad]:
    return [
        ox.Quad(q.subject, q.predicate, q.object)
        for g in graphs
        for q in store.quads_for_pattern(None, None, None, ox.NamedNode(g))
    ]


def _decided(store: ox.Store, request: Request) -> list[ox.Quad]:
    """The view of a grant the labels do not cover, decided from the label graphs
    (every triple of the store once)."""
    from gateway.policy.conditions import MemoLookup
    from gateway.policy.decide import decide
    from gateway.store.local import LABEL_PREFIX, Reader

    graphs = frozenset(g for g in store.named_graphs() if g.value.startswith(LABEL_PREFIX))
    reader = Reader(store, graphs)  # type: ignore[arg-type]
    lookup = MemoLookup(reader)
    out: list[ox.Quad] = []
    for subject in reader.named_subjects():
        decision = decide(request.rules, subject, reader.description(subject), lookup)
        out.extend(ox.Quad(t.subject, t.predicate, t.object) for t in decision.triples)
    return out


def _rows(result: Any, limit: int) -> list[Any] | None:
    rows = []
    for row in result:
        rows.append(row)
        if len(rows) > limit:
            return None
    return rows


def _error(code: str, detail: str) -> tuple[dict[str, Any], bytes]:
    return {"status": "error", "code": code, "detail": detail}, b""


def _too_many(limit: int) -> tuple[dict[str, Any], bytes]:
    return _error("query_limit", f"the query has more than {limit} results; narrow it or add LIMIT")


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    first = read_frame(stdin)
    if first is None:
        return 0
    worker = _Worker(orjson.loads(first))
    write_frame(stdout, b'{"status":"ready"}')
    while (frame := read_frame(stdin)) is not None:
        request: Request = pickle.loads(frame)  # noqa: S301 - from our own parent only
        try:
            head, body = worker.answer(request)
        except Exception as exc:  # a bug here must not take the worker down silently
            head, body = _error("internal", f"{type(exc).__name__}: {exc}")
        header = orjson.dumps(head)
        write_frame(stdout, _LENGTH.pack(len(header)), header, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
