"""Comparing a resource's value with a policy's: one comparator per kind of value.

A condition (``equals``, ``before``, ``at_least``, ...) compares each value of a property
with the value the policy names. How depends on what the value is, as SPARQL 1.1's
operator mapping does (§17.3), in the subset policies need:

| the resource's value            | policy number         | policy text           | policy boolean |
|---------------------------------|-----------------------|-----------------------|----------------|
| IRI                             | incomparable          | IRI text order        | incomparable   |
| xsd numbers (integer, decimal…) | by value              | by value, if a number | incomparable   |
| xsd:gYear                       | the year              | text order            | incomparable   |
| xsd:date, xsd:dateTime          | the year              | text order (ISO 8601) | incomparable   |
| xsd:boolean                     | incomparable          | text order            | false < true   |
| strings, language-tagged or any other literal | incomparable | text order  | incomparable   |

Each comparator gives -1, 0 or 1, or None when the two cannot be compared: a value that is
not a valid literal of its datatype (``"abc"^^xsd:integer``, ``NaN``), or of another
kind than the policy's. None makes the condition *unknown*, which fails a permit and
satisfies a deny (``gateway.policy.conditions``): malformed data never widens a view.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import pyoxigraph as ox

__all__ = [
    "COMPARATORS",
    "Comparator",
    "boolean",
    "comparator_for",
    "compare",
    "date",
    "iri",
    "number",
    "text",
    "year",
]

XSD = "http://www.w3.org/2001/XMLSchema#"

#: (lexical form, policy value) -> -1 | 0 | 1 | None
Comparator = Callable[[str, Any], "int | None"]


def _order(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def _decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return None if number.is_nan() else number


def _policy_number(value: Any) -> Decimal | None:
    """A policy value as a number: a number, or a text that reads as one; never a boolean."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    return _decimal(value) if isinstance(value, str) else None


def text(lexical: str, value: Any) -> int | None:
    """Strings, language-tagged strings and any literal of no kind below: text order,
    against a policy text only."""
    return _order(lexical, value) if isinstance(value, str) else None


def iri(lexical: str, value: Any) -> int | None:
    """An IRI against a policy text (an absolute IRI): text order."""
    return _order(lexical, value) if isinstance(value, str) else None


def number(lexical: str, value: Any) -> int | None:
    """xsd numbers by value, against a policy number or a text that reads as one."""
    mine, theirs = _decimal(lexical), _policy_number(value)
    return None if mine is None or theirs is None else _order(mine, theirs)


_YEAR = re.compile(r"-?\d{4,}")


def _by_year(lexical: str, value: Any) -> int | None:
    """A date's or year's year against a policy number; text order against a text."""
    if isinstance(value, str):
        return _order(lexical, value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    year = _YEAR.match(lexical.strip())
    return None if year is None else _order(Decimal(year.group()), Decimal(str(value)))


#: xsd:gYear ("1965", "-0044"): its year
year = _by_year
#: xsd:date and xsd:dateTime ("1965-04-01", "1965-04-01T12:00:00Z"): its year against a number
date = _by_year

_BOOLEAN = {"true": True, "1": True, "false": False, "0": False}


def boolean(lexical: str, value: Any) -> int | None:
    """xsd:boolean ("true", "false", "1", "0") against a policy boolean (false < true);
    text order against a text."""
    if isinstance(value, str):
        return _order(lexical, value)
    mine = _BOOLEAN.get(lexical.strip())
    return None if mine is None or not isinstance(value, bool) else _order(mine, value)


_NUMBERS = (
    "integer",
    "decimal",
    "double",
    "float",
    "int",
    "long",
    "short",
    "byte",
    "nonNegativeInteger",
    "positiveInteger",
    "negativeInteger",
    "nonPositiveInteger",
    "unsignedInt",
    "unsignedLong",
    "unsignedShort",
    "unsignedByte",
)
#: the comparator of each datatype that is not compared as text
COMPARATORS: dict[str, Comparator] = {
    **{XSD + name: number for name in _NUMBERS},
    XSD + "gYear": year,
    XSD + "date": date,
    XSD + "dateTime": date,
    XSD + "boolean": boolean,
}


def comparator_for(term: Any) -> Comparator | None:
    """The comparator for an RDF term: by datatype for a literal; None for a blank node."""
    if isinstance(term, ox.Literal):
        found: Comparator = COMPARATORS.get(term.datatype.value, text)
        return found
    return iri if isinstance(term, ox.NamedNode) else None


def compare(term: Any, value: Any) -> int | None:
    """-1, 0 or 1 comparing an RDF term with a policy value; None when incomparable."""
    comparator = comparator_for(term)
    return None if comparator is None else comparator(term.value, value)
