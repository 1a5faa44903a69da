"""Turning a cached ``Representation`` into a response: negotiation, ETag, 304, Link."""

from __future__ import annotations

import itertools
import time
import uuid
import weakref

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from gateway.audit import AuditLog
from gateway.errors import NotAcceptable
from gateway.formats import FORMATS, Format, negotiate
from gateway.node import Node, Representation
from gateway.policy.model import Caller

__all__ = [
    "FAILED_SOURCES_HEADER",
    "WITHHELD_FIELDS_HEADER",
    "WITHHELD_HEADER",
    "audit",
    "chosen_format",
    "failed_header",
    "failed_sources",
    "record",
    "reply",
    "send",
]

#: sent when the owner's policy withholds fields from the caller on this resource: how
#: many of the fields it names it withholds (0: none it names, but it releases only some
#: fields). From the caller's view and the policy (``gateway.policy.notice``), never from
#: which withheld values exist
WITHHELD_HEADER = "dsgo-withheld-fields"
#: with it, which: the fields' ``<IRI>``s, and ``*`` when fields the policy does not name may
#: be withheld too (``Notice.header``), so a node reading for its people can say what
WITHHELD_FIELDS_HEADER = "dsgo-withheld"
#: the node's sources whose newest version failed to read: the answer may be incomplete
FAILED_SOURCES_HEADER = "dsgo-failed-sources"

_BY_NAME = {f.name: f for f in FORMATS}
#: request ids unique to this process (an os.urandom call per request costs more than the read)
_RUN, _COUNTER = uuid.uuid4().hex[:12], itertools.count(1)


def chosen_format(request: Request) -> Format:
    """``?format=`` (for browsers and links) wins over ``Accept``."""
    name = request.query_params.get("format") if request.scope["query_string"] else None
    if name is not None:
        fmt = _BY_NAME.get(name)
        if fmt is None:
            raise NotAcceptable(f"unknown format {name!r}; use one of " + ", ".join(_BY_NAME))
        return fmt
    return negotiate(request.headers.get("accept"))


class _Prebuilt(Response):
    """A response whose header bytes were built once, with its cached representation."""

    def __init__(self, status: int, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code, self.body, self.raw_headers, self.background = status, body, raw_headers, None


def _headers(rep: Representation) -> list[tuple[bytes, bytes]]:
    headers = [(b"etag", rep.etag.encode()), (b"vary", b"Accept")]
    if rep.links:
        headers.append((b"link", ", ".join(f'<{url}>; rel="{rel}"' for rel, url in rep.links).encode()))
    if rep.told is not None:
        headers.append((WITHHELD_HEADER.encode(), str(rep.told.count).encode()))
        headers.append((WITHHELD_FIELDS_HEADER.encode(), rep.told.header.encode()))
    return headers


def send(request: Request, rep: Representation) -> Response:
    return reply(rep, request.headers.get("if-none-match"), failed_sources(request))


def reply(rep: Representation, if_none_match: str | None, failed: dict[bytes, bytes]) -> Response:
    """``rep`` as a 200, or a 304 when ``if_none_match`` names its ETag, with the
    ``failed`` sources header; the header bytes are built once per representation."""
    prebuilt = _PREBUILT.get(rep)
    if prebuilt is None:
        common = _headers(rep)
        length = str(len(rep.body)).encode()
        full = [(b"content-type", rep.content_type.encode()), (b"content-length", length)]
        prebuilt = _PREBUILT[rep] = (common + full, common)
    if if_none_match is not None and _matches(if_none_match, rep.etag):
        return _Prebuilt(304, b"", [*prebuilt[1], *failed.items()] if failed else prebuilt[1])
    return _Prebuilt(200, rep.body, [*prebuilt[0], *failed.items()] if failed else prebuilt[0])


def failed_sources(request: Request) -> dict[bytes, bytes]:
    """The ``dsgo-failed-sources`` header while a source has failed (else nothing): an
    answer from such a node is possibly incomplete, never silently so."""
    return failed_header(request.app.state.dsgo.node)


def failed_header(node: Node) -> dict[bytes, bytes]:
    names = node.sources.failed_names()
    return {FAILED_SOURCES_HEADER.encode(): ",".join(names).encode()} if names else {}


#: header bytes per cached representation, forgotten with it
_PREBUILT: weakref.WeakKeyDictionary[Representation, tuple[list[tuple[bytes, bytes]], ...]] = (
    weakref.WeakKeyDictionary()
)


def _matches(header: str, etag: str) -> bool:
    """Weak comparison, as RFC 9110 §13.1.2 requires for If-None-Match."""
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def audit(log: AuditLog | None, request: Request, caller: Caller, rep: Representation) -> None:
    """Append the read to the node's audit log ``log`` (never waits on the disk)."""
    record(log, request.scope, caller, rep)


def record(
    log: AuditLog | None, scope: Scope, caller: Caller, rep: Representation, request_id: bytes | None = None
) -> None:
    """``audit`` from the request's ASGI scope; ``request_id``: the request's first
    non-empty ``X-Request-Id`` when the caller has read the headers already (``b""``: none).

    Every read pays this, so it is lean: the entry is a plain tuple in ``Entry``'s order
    (the garbage collector soon stops tracking a plain tuple; a named tuple it would keep
    scanning until the entry is written), the request id is read from the raw headers."""
    if log is not None:
        log.record(
            (
                time.time(),
                _request_id(scope["headers"], request_id),
                caller.party_id or "anonymous",
                scope["path"],
                rep.resources,
                rep.released,
                rep.withheld,
                rep.rules,
                rep.purpose,
            )
        )


def _request_id(headers: list[tuple[bytes, bytes]], found: bytes | None) -> str:
    """The caller's ``X-Request-Id`` (``found``, or looked for in ``headers`` when None),
    else one of our own (a fifth of ``Headers.get``'s cost)."""
    if found is None:
        for name, value in headers:
            if name == b"x-request-id" and value:
                found = value
                break
    return found.decode("latin-1") if found else f"{_RUN}-{next(_COUNTER)}"
