"""Turning a cached ``Representation`` into a response: negotiation, ETag, 304, Link."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import NotAcceptable
from gateway.formats import FORMATS, Format, negotiate
from gateway.node import Representation

__all__ = ["chosen_format", "send"]

_BY_NAME = {f.name: f for f in FORMATS}


def chosen_format(request: Request) -> Format:
    """``?format=`` (for browsers and links) wins over ``Accept``."""
    name = request.query_params.get("format")
    if name is not None:
        fmt = _BY_NAME.get(name)
        if fmt is None:
            raise NotAcceptable(f"unknown format {name!r}; use one of " + ", ".join(_BY_NAME))
        return fmt
    return negotiate(request.headers.get("accept"))


def send(request: Request, rep: Representation, extra: dict[str, str] | None = None) -> Response:
    headers = {"etag": rep.etag, "vary": "Accept"}
    if rep.links:
        headers["link"] = ", ".join(f'<{url}>; rel="{rel}"' for rel, url in rep.links)
    if extra:
        headers.update(extra)
    inm = request.headers.get("if-none-match")
    if inm is not None and _matches(inm, rep.etag):
        return Response(status_code=304, headers=headers)
    return Response(rep.body, headers=headers, media_type=rep.content_type)


def _matches(header: str, etag: str) -> bool:
    """Weak comparison, as RFC 9110 §13.1.2 requires for If-None-Match."""
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))
