"""Connectors: each reads one kind of source into RDF triples.

A connector knows its source and nothing of HTTP, tokens, policies or the store. The
node asks it for a cheap ``fingerprint()`` (to notice changes) and, when that changed,
for ``load()``: every triple of the source, or a ``SourceError`` naming file and line.
``KINDS`` maps the ``type`` of a ``[[source]]`` table to its connector: ``rdf`` (RDF
files), ``ifc`` (IFC models, needs the ``ifc`` extra) and ``csv`` (CSV with a mapping).
"""

from __future__ import annotations

from connectors import ifc, rdf_file, table
from connectors.base import Connector, Kind, Progress, SourceEnv

__all__ = ["KINDS", "Connector", "Kind", "Progress", "SourceEnv"]

KINDS: dict[str, Kind] = {
    "rdf": Kind(rdf_file.RdfFile.make, rdf_file.OPTIONS),
    "ifc": Kind(ifc.IfcModel.make, ifc.OPTIONS),
    "csv": Kind(table.CsvTable.make, table.OPTIONS, table.PATHS),
}
