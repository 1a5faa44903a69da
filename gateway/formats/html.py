"""A readable HTML page: one table per subject, every IRI a link.

IRIs in the node's own namespace link to this node's paths, so the pages can be
browsed wherever the node runs; other IRIs link to themselves. Everything is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import quote

import pyoxigraph as ox

from gateway.formats import Page

__all__ = ["href", "render"]

_STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;"
    "color:#1b1f23}h1{font-size:1.3rem;word-break:break-all}h2{font-size:1.05rem;margin-top:2rem;"
    "word-break:break-all}table{border-collapse:collapse;width:100%}td{border-top:1px solid #ddd;"
    "padding:.3rem .6rem;vertical-align:top}td:first-child{width:30%;color:#555}"
    "a{color:#0b5fa5;text-decoration:none}a:hover{text-decoration:underline}"
    ".dt{color:#888;font-size:.85em}nav a{margin-right:1rem}.note{background:#fff6d6;"
    "padding:.5rem 1rem;border-left:4px solid #e6b800}footer{margin-top:2rem;color:#888}"
)


def href(iri: str, namespace: str) -> str:
    """Where a browser should go for ``iri``: this node's path for its own IRIs."""
    if iri.startswith(namespace):
        return "/" + quote(iri[len(namespace) :], safe="/:@!$&'()*+,;=-._~%")
    return iri


def render(triples: Sequence[ox.Triple], page: Page) -> bytes:
    groups: dict[str, list[ox.Triple]] = {}
    for t in triples:
        s = t.subject
        key = (
            "_:" + s.value
            if isinstance(s, ox.BlankNode)
            else s.value
            if isinstance(s, ox.NamedNode)
            else str(s)
        )
        groups.setdefault(key, []).append(t)
    main = groups.pop(page.subject, [])
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{escape(page.title or page.vocab.curie(page.subject))}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{escape(page.title or page.subject)}</h1>",
        f'<p><a href="{escape(href(page.subject, page.namespace))}">{escape(page.subject)}</a></p>',
    ]
    if page.links:
        nav = " ".join(
            f'<a rel="{escape(rel)}" href="{escape(url)}">{escape(rel)}</a>' for rel, url in page.links
        )
        parts.append(f"<nav>{nav}</nav>")
    parts.extend(f'<p class="note">{escape(note)}</p>' for note in page.notes)
    if main:
        parts.append(_table(main, page))
    for subject, rows in groups.items():
        anchor = escape(subject)
        title = subject if subject.startswith("_:") else _link(subject, page)
        parts.append(f'<h2 id="{anchor}">{title}</h2>{_table(rows, page)}')
    if not triples:
        parts.append("<p>Nothing to show.</p>")
    parts.append(
        '<footer>Also as <a href="?format=turtle">Turtle</a>, '
        '<a href="?format=jsonld">JSON-LD</a>, <a href="?format=ntriples">N-Triples</a>.</footer>'
        "</body></html>"
    )
    return "".join(parts).encode()


def _table(triples: list[ox.Triple], page: Page) -> str:
    rows = sorted(triples, key=lambda t: (t.predicate.value, str(t.object)))
    cells = [
        f"<tr><td>{_link(t.predicate.value, page)}</td><td>{_term(t.object, page)}</td></tr>" for t in rows
    ]
    return "<table>" + "".join(cells) + "</table>"


def _link(iri: str, page: Page) -> str:
    return f'<a href="{escape(href(iri, page.namespace))}">{escape(page.vocab.curie(iri))}</a>'


def _term(term: ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple, page: Page) -> str:
    if isinstance(term, ox.NamedNode):
        return _link(term.value, page)
    if isinstance(term, ox.BlankNode):
        return f'<a href="#_:{escape(term.value)}">_:{escape(term.value)}</a>'
    if isinstance(term, ox.Literal):
        text = escape(term.value)
        if term.language:
            return f'{text} <span class="dt">@{escape(term.language)}</span>'
        if term.datatype.value.endswith("#string"):
            return text
        return f'{text} <span class="dt">{escape(page.vocab.curie(term.datatype.value))}</span>'
    return escape(str(term))
