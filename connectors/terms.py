"""RDF terms the IFC and CSV connectors share: namespaces, datatypes, typed literals.

Numbers become ``xsd:decimal`` literals in plain notation (never an exponent), rounded
to 12 significant digits: a float that went through a unit conversion
(``2134 * 0.001``) then reads ``2.134``, not ``2.1340000000000003``.
"""

from __future__ import annotations

import math
from decimal import Decimal

import pyoxigraph as ox

__all__ = [
    "BAG_PAND",
    "BOT",
    "DSGO",
    "IFC",
    "PROPS",
    "QUDT",
    "RDFS_LABEL",
    "RDF_TYPE",
    "UNIT",
    "XSD",
    "boolean",
    "decimal",
    "decimal_text",
    "integer",
    "quantity",
]

RDF_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
RDFS_LABEL = ox.NamedNode("http://www.w3.org/2000/01/rdf-schema#label")
XSD = "http://www.w3.org/2001/XMLSchema#"
BOT = "https://w3id.org/bot#"
PROPS = "https://w3id.org/props#"
QUDT = "http://qudt.org/schema/qudt/"
UNIT = "http://qudt.org/vocab/unit/"
DSGO = "https://vocab.dsgo.example/def#"
#: ifcOWL (IFC4 ADD2), the ``ifc`` prefix of vocab/context.jsonld
IFC = "https://standards.buildingsmart.org/IFC/DEV/IFC4/ADD2/OWL#"
BAG_PAND = "https://bag.basisregistraties.overheid.nl/id/pand/"

_NUMERIC_VALUE = ox.NamedNode(QUDT + "numericValue")
_QUDT_UNIT = ox.NamedNode(QUDT + "unit")
_XSD_BOOLEAN = ox.NamedNode(XSD + "boolean")
_XSD_INTEGER = ox.NamedNode(XSD + "integer")
_XSD_DECIMAL = ox.NamedNode(XSD + "decimal")
_TRUE = ox.Literal("true", datatype=_XSD_BOOLEAN)
_FALSE = ox.Literal("false", datatype=_XSD_BOOLEAN)


def boolean(value: bool) -> ox.Literal:
    return _TRUE if value else _FALSE


def integer(value: int) -> ox.Literal:
    return ox.Literal(str(value), datatype=_XSD_INTEGER)


def decimal_text(value: float) -> str | None:
    """``value`` as an xsd:decimal lexical form, 12 significant digits; None if not finite."""
    if not math.isfinite(value):
        return None
    text = format(Decimal(f"{value:.12g}"), "f")
    return "0" if text in ("-0", "-0.0") else text


def decimal(value: float) -> ox.Literal | None:
    text = decimal_text(value)
    return None if text is None else ox.Literal(text, datatype=_XSD_DECIMAL)


def quantity(subject: ox.NamedNode, predicate: ox.NamedNode, value: float, unit: str) -> list[ox.Triple]:
    """``subject predicate [ qudt:numericValue value ; qudt:unit unit:{unit} ]``; nothing if
    ``value`` is not finite."""
    literal = decimal(value)
    if literal is None:
        return []
    node = ox.BlankNode()
    return [
        ox.Triple(subject, predicate, node),
        ox.Triple(node, _NUMERIC_VALUE, literal),
        ox.Triple(node, _QUDT_UNIT, ox.NamedNode(UNIT + unit)),
    ]
