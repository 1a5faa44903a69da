"""What a SPARQL query mentions, read from its text: IRIs, prefixed names, predicates.

pyoxigraph does not expose the query algebra to Python, so the traversal's link
selection works from the text: every IRI the query names (after expanding its own
``PREFIX`` declarations and the project's prefixes) may be a predicate worth following
or a start IRI. Strings and comments are ignored.
"""

from __future__ import annotations

import re

__all__ = ["mentioned_iris"]

_STRINGS = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*"""'
    r"|'''(?:[^'\\]|\\.|'(?!''))*'''"
    r'|"(?:[^"\\\n]|\\.)*"'
    r"|'(?:[^'\\\n]|\\.)*'",
    re.S,
)
_COMMENTS = re.compile(r"(?m)#[^\n]*$")
_PREFIX = re.compile(r"(?i)PREFIX\s+([A-Za-z][\w.-]*)?:\s*<([^<>\s]*)>")
_IRI = re.compile(r"<([^<>\s]+)>")
_PNAME = re.compile(r"(?<![\w<?$:])([A-Za-z][\w.-]*)?:([A-Za-z_][\w.-]*|)\b")


def mentioned_iris(query: str, prefixes: dict[str, str]) -> set[str]:
    """Absolute IRIs the query names, whether written in full or as prefixed names."""
    text = _STRINGS.sub(" ", query)
    declared = {m.group(1) or "": m.group(2) for m in _PREFIX.finditer(text)}
    text = _PREFIX.sub(" ", text)
    iris = {m.group(1) for m in _IRI.finditer(text)}
    text = _COMMENTS.sub(" ", _IRI.sub(" ", text))
    known = {**prefixes, **declared}
    for m in _PNAME.finditer(text):
        ns = known.get(m.group(1) or "")
        if ns is not None and m.group(2):
            iris.add(ns + m.group(2))
    return {i for i in iris if i.startswith(("http://", "https://"))}
