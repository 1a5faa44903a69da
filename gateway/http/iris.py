"""Which strings a request may name as a resource IRI.

An IRI (RFC 3987) holds no spaces, controls, ``<>"{}|^`\\`` or bad percent-escapes;
``pyoxigraph.NamedNode`` is the judge of the rest, and raises on what it refuses. The
edge asks here first, so such a string is a 404 (a resource path) or a 400 (a body),
never an unhandled ``ValueError``; ``MAX_IRI`` bounds what any store is asked about.
"""

from __future__ import annotations

import re

import pyoxigraph as ox

__all__ = ["MAX_IRI", "valid_iri"]

#: longer IRIs are refused before any store sees them (URLs beyond ~2000 characters
#: break in browsers and proxies; no resource of a node has one)
MAX_IRI = 4096
_ILLEGAL = re.compile(r'[\x00-\x20\x7f<>"{}|^`\\]')


def valid_iri(value: str) -> bool:
    """True if ``value`` is an absolute IRI a store can be asked about."""
    if len(value) > MAX_IRI or _ILLEGAL.search(value):
        return False
    try:
        ox.NamedNode(value)
    except ValueError:
        return False
    return True
