"""RDF files: Turtle, N-Triples, N-Quads, TriG and JSON-LD, parsed by pyoxigraph.

Relative IRIs resolve against the node's namespace, so a file may say
``<id/building/42>``. Named graphs in N-Quads/TriG are merged into the source's own
graph (the node keeps one graph per source). JSON-LD contexts are taken from vocab/
only: a context IRI not found there is refused with ``RemoteContextError`` and never
fetched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyoxigraph as ox

from connectors.base import SourceEnv, file_fingerprint
from gateway.errors import RemoteContextError, SourceError

__all__ = ["FORMATS", "OPTIONS", "RdfFile", "inline_contexts"]

#: format name (and file extension) -> pyoxigraph format
FORMATS: dict[str, ox.RdfFormat] = {
    "turtle": ox.RdfFormat.TURTLE,
    "ttl": ox.RdfFormat.TURTLE,
    "ntriples": ox.RdfFormat.N_TRIPLES,
    "nt": ox.RdfFormat.N_TRIPLES,
    "nquads": ox.RdfFormat.N_QUADS,
    "nq": ox.RdfFormat.N_QUADS,
    "trig": ox.RdfFormat.TRIG,
    "jsonld": ox.RdfFormat.JSON_LD,
    "json": ox.RdfFormat.JSON_LD,
}

OPTIONS = {
    "format": (
        lambda v: isinstance(v, str) and v in FORMATS,
        "expected one of " + ", ".join(sorted(FORMATS)),
    ),
}


@dataclass(frozen=True, slots=True)
class RdfFile:
    path: Path
    format: ox.RdfFormat
    env: SourceEnv

    @classmethod
    def make(cls, path: Path, options: Mapping[str, Any], env: SourceEnv) -> RdfFile:
        name = options.get("format") or path.suffix.lstrip(".").lower()
        if name not in FORMATS:
            raise SourceError(path, "unknown RDF format; name it with format = " + ", ".join(FORMATS))
        return cls(path, FORMATS[name], env)

    def fingerprint(self) -> str:
        return file_fingerprint(self.path)

    def load(self) -> Sequence[ox.Triple]:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise SourceError(self.path, f"cannot be read ({exc.strerror or exc})") from None
        if self.format == ox.RdfFormat.JSON_LD:
            data = _resolve_jsonld(self.path, data, self.env.contexts)
        try:
            quads = ox.parse(data, self.format, base_iri=self.env.base_iri)
            return _stable_blank_nodes([q.triple for q in quads], str(self.path.resolve()))
        except SyntaxError as exc:
            raise SourceError(self.path, _reason(exc), exc.lineno) from None
        except ValueError as exc:  # invalid IRI, literal, ... found while parsing
            raise SourceError(self.path, str(exc)) from None


def _stable_blank_nodes(triples: list[ox.Triple], scope: str) -> list[ox.Triple]:
    """Blank node labels made unique to this file yet the same on every read and in every
    worker (numbered in order of appearance: the parser's own labels for ``[]`` are random),
    so that representations and their ETags do not change between processes."""
    prefix = hashlib.blake2b(scope.encode(), digest_size=6).hexdigest()
    labels: dict[ox.BlankNode, ox.BlankNode] = {}

    def fix(term: Any) -> Any:
        if isinstance(term, ox.BlankNode):
            new = labels.get(term)
            if new is None:
                new = labels[term] = ox.BlankNode(f"b{prefix}n{len(labels)}")
            return new
        return term

    return [
        ox.Triple(fix(t.subject), t.predicate, fix(t.object))
        if isinstance(t.subject, ox.BlankNode) or isinstance(t.object, ox.BlankNode)
        else t
        for t in triples
    ]


def _reason(exc: SyntaxError) -> str:
    return str(exc.msg or exc).strip()


def _resolve_jsonld(path: Path, data: bytes, contexts: Mapping[str, Any]) -> bytes:
    try:
        doc = json.loads(data)
    except UnicodeDecodeError as exc:
        raise SourceError(path, f"not UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise SourceError(path, f"not valid JSON ({exc.msg}, column {exc.colno})", exc.lineno) from None
    try:
        return json.dumps(inline_contexts(doc, contexts)).encode()
    except LookupError as exc:
        raise RemoteContextError(
            path,
            f"JSON-LD context {exc.args[0]!r} is not in vocab/; remote contexts are never "
            "fetched (use the project's context or put the context inline)",
        ) from None


def inline_contexts(node: Any, contexts: Mapping[str, Any]) -> Any:
    """Replace every context reference by its vocab/ document; ``LookupError`` if unknown."""
    if isinstance(node, list):
        return [inline_contexts(v, contexts) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "@context":
            out[key] = _context(value, contexts)
        else:
            out[key] = inline_contexts(value, contexts)
    return out


def _context(value: Any, contexts: Mapping[str, Any]) -> Any:
    if isinstance(value, list):
        return [_context(v, contexts) for v in value]
    if isinstance(value, str):
        if value not in contexts:
            raise LookupError(value)
        return _context(contexts[value], contexts)
    if isinstance(value, dict):
        return _context_object(value, contexts)
    return value


def _context_object(value: dict[str, Any], contexts: Mapping[str, Any]) -> Any:
    """A context given as an object: a context document, ``@import`` (JSON-LD 1.1 §4.1.10)
    and the scoped contexts of its term definitions resolved from ``contexts``."""
    if "@context" in value and len(value) == 1:  # a context document
        return _context(value["@context"], contexts)
    resolved = dict(value)
    if "@import" in resolved:
        imported = _context(resolved.pop("@import"), contexts)
        resolved = {**imported, **resolved}
    for term, definition in resolved.items():
        if isinstance(definition, dict) and "@context" in definition:  # scoped contexts
            resolved[term] = {**definition, "@context": _context(definition["@context"], contexts)}
    return resolved
