"""What a SPARQL query's text says before it runs, without parsing it.

pyoxigraph offers no query parser, so these read the query's tokens with its strings,
IRIs and comments taken out (``bare``): a keyword there is a keyword of the query.
"""

from __future__ import annotations

import re

__all__ = ["bare", "names_a_dataset", "order_matters"]

_STRIPPED = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*"""'
    r"|'''(?:[^'\\]|\\.|'(?!''))*'''"
    r'|"(?:[^"\\\n]|\\.)*"'
    r"|'(?:[^'\\\n]|\\.)*'"
    r"|<[^<>\s]*>"
    r"|#[^\n]*",
    re.S,
)
_FROM = re.compile(r"(?<![\w:?$])FROM(?![\w:-])", re.I)
_ORDERED = re.compile(r"(?<![\w:?$])(?:LIMIT|OFFSET|ORDER|GROUP_CONCAT|SAMPLE)(?![\w:-])", re.I)


def bare(query: str) -> str:
    """``query`` with its strings, IRIs and comments blanked out."""
    return _STRIPPED.sub(" ", query)


def names_a_dataset(query: str) -> bool:
    """Whether the query names its own dataset (``FROM``, ``FROM NAMED``). A caller's
    view is one default graph and no named graphs, so such graphs do not exist in it:
    the query then runs over an empty dataset, as it would over a store of the view."""
    return bool(_FROM.search(bare(query)))


def order_matters(query: str) -> bool:
    """Whether the answer can depend on the order in which solutions are found (``LIMIT``,
    ``OFFSET``, ties of ``ORDER BY``, ``GROUP_CONCAT``, ``SAMPLE``). Any other answer is
    put in a canonical order after the query, so it never shows how the data was stored."""
    return bool(_ORDERED.search(bare(query)))
