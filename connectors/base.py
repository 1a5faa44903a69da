"""The connector contract: what a source must offer the node."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyoxigraph as ox

__all__ = ["Connector", "Kind", "Progress", "SourceEnv", "file_fingerprint"]

#: ``progress(phase, done, total)``: how far a long ``load()`` is (total 0 if unknown)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class SourceEnv:
    """What every connector may know of its node."""

    base_iri: str
    #: JSON-LD context documents by IRI, all from vocab/; nothing else may be loaded
    contexts: Mapping[str, Any] = field(default_factory=dict)
    #: prefix -> namespace IRI (vocab/context.jsonld), for prefixed names in mapping files
    prefixes: Mapping[str, str] = field(default_factory=dict)


def file_fingerprint(*paths: Path) -> str:
    """Changes whenever one of the files does (inode, size, mtime); "" if the first is gone,
    "-" in place of any other that is missing."""
    parts = []
    for i, path in enumerate(paths):
        try:
            st = path.stat()
        except OSError:
            if i == 0:
                return ""
            parts.append("-")
            continue
        parts.append(f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}")
    return "/".join(parts)


class Connector(Protocol):
    """A source. Connectors that publish good data despite bad parts (a CSV's bad rows)
    also expose ``problems: list[SourceError]``, describing the last successful ``load()``."""

    def fingerprint(self) -> str:
        """A cheap marker that changes whenever the source does ("" if it is gone)."""

    def load(self) -> Sequence[ox.Triple]:
        """Every triple of the source; raises ``SourceError`` naming file and line."""


@dataclass(frozen=True, slots=True)
class Kind:
    make: Callable[[Path, Mapping[str, Any], SourceEnv], Connector]
    #: extra keys a [[source]] table may have: name -> (check, what is expected)
    options: Mapping[str, tuple[Callable[[Any], bool], str]] = field(default_factory=dict)
    #: which of those options are file paths: the configuration resolves them relative to
    #: its own file (as it does ``path``), so a connector receives them absolute
    paths: frozenset[str] = frozenset()
    #: options a [[source]] table of this kind must have
    required: frozenset[str] = frozenset()
    #: a store the node reads live at every request (``sparql``): it has no ``path``, is
    #: never loaded nor copied into the node, and is then the node's only source
    live: bool = False
