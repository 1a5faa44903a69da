"""SPARQL 1.1 results as bytes: JSON (§ Query Results JSON Format), XML, CSV and TSV.

Pure functions from solutions (or a boolean) to bytes, with the negotiation that picks
one, so the query workers can render an answer without the HTTP edge. Graph results
(CONSTRUCT, DESCRIBE) are rendered by the node's RDF formats and RDF/XML and N-Quads
(``RDF_FORMATS``), which SPARQLWrapper's and rdflib's default ``Accept`` ask for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import orjson
import pyoxigraph as ox

from gateway.errors import NotAcceptable
from gateway.formats import FORMATS, Format, Page

__all__ = ["RDF_FORMATS", "RESULT_FORMATS", "boolean", "choose", "solutions", "table", "term_json"]

RESULT_FORMATS = {
    "application/sparql-results+json": "json",
    "application/json": "json",
    "application/sparql-results+xml": "xml",
    "application/xml": "xml",
    "text/xml": "xml",
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
}


def _oxigraph(kind: ox.RdfFormat) -> Callable[[Sequence[ox.Triple], Page], bytes]:
    def render(triples: Sequence[ox.Triple], page: Page) -> bytes:
        return ox.serialize(triples, format=kind, prefixes=page.vocab.prefixes) or b""

    return render


_RDFXML = Format("rdfxml", "application/rdf+xml", _oxigraph(ox.RdfFormat.RDF_XML))
_NQUADS = Format("nquads", "application/n-quads", _oxigraph(ox.RdfFormat.N_QUADS), ("text/x-nquads",))
#: graph result media types -> format; Turtle (``FORMATS[0]``) is the default
RDF_FORMATS: dict[str, Format] = {
    t: f
    for f in (*(f for f in FORMATS if f.name != "html"), _RDFXML, _NQUADS)
    for t in (f.media_type, *f.aliases)
}


def choose(accept: str | None, table: dict[str, Any], default: Any) -> Any:
    """What ``table`` offers for an ``Accept`` header (the highest q wins), ``default`` for
    ``*/*`` or none; ``NotAcceptable`` naming the offered types when nothing fits."""
    if not accept or accept.strip() in ("*/*", ""):
        return default
    best, best_q = None, 0.0
    for part in accept.split(","):
        fields = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = fields[0].lower()
        found = (
            default
            if media in ("*/*", "application/*", "text/*") and default is not None
            else table.get(media)
        )
        if found is not None and q > best_q:
            best, best_q = found, q
    if best is None:
        raise NotAcceptable("offered: " + ", ".join(table))
    return best


def term_json(term: Any) -> dict[str, str]:
    """A term as SPARQL 1.1 Query Results JSON writes it (§3.2.2)."""
    kind = type(term)
    if kind is ox.NamedNode:
        return {"type": "uri", "value": term.value}
    if kind is ox.Literal:
        out = {"type": "literal", "value": term.value}
        if term.language:
            out["xml:lang"] = term.language
        else:
            datatype = term.datatype.value
            if datatype != _XSD_STRING:
                out["datatype"] = datatype
        return out
    if kind is ox.BlankNode:
        return {"type": "bnode", "value": term.value}
    return {"type": "triple", "value": str(term)}


_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"


def boolean(value: bool, kind: str) -> tuple[bytes, str]:
    if kind == "json":
        return orjson.dumps({"head": {}, "boolean": value}), "application/sparql-results+json"
    if kind == "xml":
        text = "true" if value else "false"
        return (
            f'<?xml version="1.0"?><sparql xmlns="http://www.w3.org/2005/sparql-results#"><head/>'
            f"<boolean>{text}</boolean></sparql>"
        ).encode(), "application/sparql-results+xml"
    return (b"_askResult\r\n" + (b"true" if value else b"false") + b"\r\n"), (
        "text/csv; charset=utf-8" if kind == "csv" else "text/tab-separated-values; charset=utf-8"
    )


def table(
    variables: Sequence[str], rows: Sequence[Sequence[Any]], kind: str, bound: bool = False
) -> tuple[bytes, str]:
    """``solutions`` of rows given as their terms by position (None: unbound), as a
    query's solutions are read: the JSON every point look-up is answered in is written
    without a mapping per row. ``bound``: no row has an unbound variable."""
    if kind == "json":
        return _json_table(variables, rows, bound), _JSON
    return solutions(variables, [dict(zip(variables, terms, strict=True)) for terms in rows], kind)


def _json_table(variables: Sequence[str], rows: Sequence[Sequence[Any]], bound: bool) -> bytes:
    """SPARQL 1.1 Query Results JSON (§3) of positional rows, one ``orjson`` call; rows of
    one or two bound variables (every point look-up) by a comprehension of their own."""
    term = _term_json
    if bound and len(variables) == 2:
        first, second = variables
        bindings = [{first: term(a), second: term(b)} for a, b in rows]
    elif bound and len(variables) == 1:
        (only,) = variables
        bindings = [{only: term(a)} for (a,) in rows]
    else:
        bindings = [
            {v: term(t) for v, t in zip(variables, terms, strict=True) if t is not None} for terms in rows
        ]
    return orjson.dumps({"head": {"vars": list(variables)}, "results": {"bindings": bindings}})


def _term_json(term: Any, named: type = ox.NamedNode, literal: type = ox.Literal) -> dict[str, str]:
    """``term_json``, the commonest terms (IRIs, plain and typed literals) inline."""
    kind = type(term)
    if kind is named:
        return {"type": "uri", "value": term.value}
    if kind is literal and not term.language:
        datatype = term.datatype.value
        if datatype == _XSD_STRING:
            return {"type": "literal", "value": term.value}
        return {"type": "literal", "value": term.value, "datatype": datatype}
    return term_json(term)


_JSON = "application/sparql-results+json"


def solutions(variables: Sequence[str], rows: Sequence[Any], kind: str) -> tuple[bytes, str]:
    if kind == "json":
        bindings = [{v: term_json(row[v]) for v in variables if row[v] is not None} for row in rows]
        body = {"head": {"vars": list(variables)}, "results": {"bindings": bindings}}
        return orjson.dumps(body), _JSON
    if kind == "xml":
        parts = ['<?xml version="1.0"?><sparql xmlns="http://www.w3.org/2005/sparql-results#"><head>']
        parts += [f"<variable name={quoteattr(v)}/>" for v in variables]
        parts.append("</head><results>")
        for row in rows:
            parts.append("<result>")
            for v in variables:
                term = row[v]
                if term is not None:
                    parts.append(f"<binding name={quoteattr(v)}>{_term_xml(term)}</binding>")
            parts.append("</result>")
        parts.append("</results></sparql>")
        return "".join(parts).encode(), "application/sparql-results+xml"
    if kind == "csv":
        lines = [",".join(variables)]
        for row in rows:
            lines.append(",".join(_csv(row[v]) for v in variables))
        return ("\r\n".join(lines) + "\r\n").encode(), "text/csv; charset=utf-8"
    lines = ["\t".join("?" + v for v in variables)]
    for row in rows:
        lines.append("\t".join("" if row[v] is None else str(row[v]) for v in variables))
    return ("\n".join(lines) + "\n").encode(), "text/tab-separated-values; charset=utf-8"


def _term_xml(term: Any) -> str:
    if isinstance(term, ox.NamedNode):
        return f"<uri>{escape(term.value)}</uri>"
    if isinstance(term, ox.BlankNode):
        return f"<bnode>{escape(term.value)}</bnode>"
    if isinstance(term, ox.Literal):
        if term.language:
            return f"<literal xml:lang={quoteattr(term.language)}>{escape(term.value)}</literal>"
        if term.datatype.value != "http://www.w3.org/2001/XMLSchema#string":
            return f"<literal datatype={quoteattr(term.datatype.value)}>{escape(term.value)}</literal>"
        return f"<literal>{escape(term.value)}</literal>"
    return f"<literal>{escape(str(term))}</literal>"


def _csv(term: Any) -> str:
    if term is None:
        return ""
    text = (
        term.value
        if isinstance(term, ox.NamedNode | ox.Literal)
        else "_:" + term.value
        if isinstance(term, ox.BlankNode)
        else str(term)
    )
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
