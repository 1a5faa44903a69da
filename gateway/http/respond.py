"""Turning a cached ``Representation`` into a response: negotiation, ETag, 304, Link."""

from __future__ import annotations

import time
import uuid

from starlette.requests import Request
from starlette.responses import Response

from gateway.audit import AuditLog, Entry
from gateway.errors import NotAcceptable
from gateway.formats import FORMATS, Format, negotiate
from gateway.node import Representation
from gateway.policy.model import Caller as PolicyCaller

__all__ = ["WITHHELD_HEADER", "audit", "chosen_format", "send"]

#: how many fields of the answer were withheld from the caller (a count, never which)
WITHHELD_HEADER = "dsgo-withheld-fields"

_BY_NAME = {f.name: f for f in FORMATS}


def chosen_format(request: Request) -> Format:
    """``?format=`` (for browsers and links) wins over ``Accept``."""
    name = request.query_params.get("format") if request.scope["query_string"] else None
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
    if rep.withheld:
        headers[WITHHELD_HEADER] = str(rep.withheld)
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


def audit(request: Request, caller: PolicyCaller, rep: Representation) -> None:
    """Append the read to the node's audit log (never waits on the disk)."""
    log: AuditLog | None = request.app.state.audit
    if log is None:
        return
    log.record(
        Entry(
            time=time.time(),
            request_id=request.headers.get("x-request-id") or uuid.uuid4().hex,
            caller=caller.party_id or "anonymous",
            path=request.url.path,
            resources=rep.resources,
            released=tuple(sorted(rep.released)),
            withheld=rep.withheld,
            rules=rep.rules,
            purpose="; ".join(rep.purposes),
        )
    )
