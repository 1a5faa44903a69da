"""The connector contract: what a source must offer the node."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyoxigraph as ox

__all__ = ["Connector", "Kind", "SourceEnv"]


@dataclass(frozen=True, slots=True)
class SourceEnv:
    """What every connector may know of its node."""

    base_iri: str
    #: JSON-LD context documents by IRI, all from vocab/; nothing else may be loaded
    contexts: Mapping[str, Any] = field(default_factory=dict)


class Connector(Protocol):
    def fingerprint(self) -> str:
        """A cheap marker that changes whenever the source does ("" if it is gone)."""

    def load(self) -> Sequence[ox.Triple]:
        """Every triple of the source; raises ``SourceError`` naming file and line."""


@dataclass(frozen=True, slots=True)
class Kind:
    make: Callable[[Path, Mapping[str, Any], SourceEnv], Connector]
    #: extra keys a [[source]] table may have: name -> (check, what is expected)
    options: Mapping[str, tuple[Callable[[Any], bool], str]] = field(default_factory=dict)
