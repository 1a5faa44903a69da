"""Connectors: each reads one kind of source into RDF triples.

A connector knows its source and nothing of HTTP, tokens, policies or the store. The
node asks it for a cheap ``fingerprint()`` (to notice changes) and, when that changed,
for ``load()``: every triple of the source, or a ``SourceError`` naming file and line.
``KINDS`` maps the ``type`` of a ``[[source]]`` table to its connector: ``rdf`` (RDF
files), ``ifc`` (IFC models, needs the ``ifc`` extra) and ``csv`` (CSV with a mapping).

``sparql`` is the odd one out: a SPARQL 1.1 server holding the party's data is *not*
copied, so it has no connector that loads; its kind only lets the configuration check
its keys, and the node reads it live through ``gateway.store.remote``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyoxigraph as ox

from connectors import ifc, rdf_file, table
from connectors.base import Connector, Kind, Progress, SourceEnv
from gateway.errors import SourceError

__all__ = ["KINDS", "SPARQL_OPTIONS", "Connector", "Kind", "Progress", "SourceEnv"]


def _is_iri(value: Any) -> bool:
    try:
        ox.NamedNode(value)
    except (TypeError, ValueError):
        return False
    return True


def _is_seconds(low: float) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and value >= low

    return check


#: the keys of a ``type = "sparql"`` source (``endpoint`` is required)
SPARQL_OPTIONS = {
    "endpoint": (
        lambda v: isinstance(v, str) and re.fullmatch(r"https?://[^\s/?#]+(/[^\s#]*)?", v) is not None,
        "expected the store's SPARQL endpoint, an http(s) URL such as http://127.0.0.1:8890/sparql",
    ),
    "graph": (_is_iri, "expected the absolute IRI of the named graph that holds the data"),
    "timeout": (_is_seconds(0.001), "expected a positive number of seconds"),
    "cache_ttl": (_is_seconds(0), "expected seconds an answer may be reused (0: never)"),
    "watch": (_is_seconds(0), "expected seconds between checks for changes in the store (0: never)"),
}


def _read_live(path: Path, options: Mapping[str, Any], env: SourceEnv) -> Connector:
    """Never called for copying: a SPARQL store is read live (``gateway.store.remote``)."""
    raise SourceError(str(options.get("endpoint", "sparql")), "a SPARQL store is read live, never loaded")


KINDS: dict[str, Kind] = {
    "rdf": Kind(rdf_file.RdfFile.make, rdf_file.OPTIONS),
    "ifc": Kind(ifc.IfcModel.make, ifc.OPTIONS, ifc.PATHS),
    "csv": Kind(table.CsvTable.make, table.OPTIONS, table.PATHS),
    "sparql": Kind(_read_live, SPARQL_OPTIONS, required=frozenset({"endpoint"}), live=True),
}
