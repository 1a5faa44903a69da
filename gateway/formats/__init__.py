"""Representations: pure functions from triples to bytes, chosen by ``Accept``.

Each ``Format`` renders a list of triples (a resource's view, a collection page, the
node's description) with a ``Page`` saying what is being shown. Negotiation follows
RFC 9110 §12.5.1: the highest q wins, then the more specific range, then the order of
``FORMATS`` (Turtle first, the default for ``*/*`` or no ``Accept``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pyoxigraph as ox

from gateway.errors import NotAcceptable
from gateway.vocab import Vocab

__all__ = ["FORMATS", "Format", "Page", "negotiate"]


@dataclass(frozen=True, slots=True)
class Page:
    """What a representation shows, for the renderers that need more than triples."""

    vocab: Vocab
    #: the node's namespace: IRIs in it link to this node's own paths in HTML
    namespace: str
    #: the IRI the page is about (a resource, a collection page, the node)
    subject: str
    title: str = ""
    #: (rel, href) pairs shown as navigation (HTML) and sent as ``Link`` headers
    links: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Format:
    name: str
    media_type: str
    render: Callable[[Sequence[ox.Triple], Page], bytes]
    #: other media types that select this format
    aliases: tuple[str, ...] = ()

    @property
    def content_type(self) -> str:
        text = self.media_type.startswith("text/")
        return self.media_type + ("; charset=utf-8" if text else "")


def _formats() -> tuple[Format, ...]:
    from gateway.formats import html, jsonld, rdf

    return (
        Format("turtle", "text/turtle", rdf.turtle, ("application/x-turtle",)),
        Format("jsonld", "application/ld+json", jsonld.render, ("application/json",)),
        Format("ntriples", "application/n-triples", rdf.ntriples, ("text/plain",)),
        Format("html", "text/html", html.render, ("application/xhtml+xml",)),
    )


FORMATS: tuple[Format, ...] = _formats()
_BY_TYPE = {t: f for f in FORMATS for t in (f.media_type, *f.aliases)}
_NEGOTIATED: dict[str | None, Format | None] = {}


def negotiate(accept: str | None) -> Format:
    """The best format for an ``Accept`` header; ``NotAcceptable`` if none fits."""
    try:
        chosen = _NEGOTIATED[accept]
    except KeyError:
        chosen = _choose(accept)
        if len(_NEGOTIATED) < 4096:  # headers repeat; an attacker's variety does not grow it
            _NEGOTIATED[accept] = chosen
    if chosen is None:
        offered = ", ".join(f.media_type for f in FORMATS)
        raise NotAcceptable(f"none of the requested media types can be produced; offered: {offered}")
    return chosen


def _choose(accept: str | None) -> Format | None:
    if not accept or not accept.strip():
        return FORMATS[0]
    best: tuple[float, int, int] | None = None
    chosen: Format | None = None
    for rank, fmt in enumerate(FORMATS):
        # the most specific range naming any of the format's types decides its q
        matches = (_quality(accept, m) for m in (fmt.media_type, *fmt.aliases))
        q, specificity = max(matches, key=lambda match: match[1])
        if q <= 0:
            continue
        key = (q, specificity, -rank)
        if best is None or key > best:
            best, chosen = key, fmt
    return chosen


def _quality(accept: str, media: str) -> tuple[float, int]:
    """q and specificity (2 exact, 1 type/*, 0 */*) of the most specific matching range."""
    kind = media.split("/")[0]
    found: tuple[int, float] | None = None
    for part in accept.split(","):
        fields = [p.strip() for p in part.split(";")]
        rng = fields[0].lower()
        if rng == media:
            spec = 2
        elif rng == f"{kind}/*":
            spec = 1
        elif rng in ("*/*", "*"):
            spec = 0
        else:
            continue
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        if found is None or spec > found[0]:
            found = (spec, q)
    return (0.0, -1) if found is None else (found[1], found[0])
