"""CORS (the Fetch standard's CORS protocol) for browser clients such as YASGUI or Comunica.

Off unless the node's operator lists origins (``node.cors_origins``); ``["*"]`` allows any,
for open nodes. Preflights are answered; ``Authorization`` may be sent (bearer tokens, so
no cookies: credentials mode stays off, which also lets ``*`` work); the headers a reader
needs (ETag, Link, the withheld-field count) are exposed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.http.respond import WITHHELD_FIELDS_HEADER, WITHHELD_HEADER

__all__ = ["cors"]

_REQUEST_HEADERS = (
    "Authorization",
    "Accept",
    "Content-Type",
    "If-None-Match",
    "delegation_evidence",
    "Delegation-Evidence",
    "X-Request-Id",
)
_EXPOSED = ("ETag", "Link", "Vary", WITHHELD_HEADER, WITHHELD_FIELDS_HEADER)


def cors(origins: Sequence[str]) -> dict[str, Any]:
    """Keyword arguments for Starlette's ``CORSMiddleware``."""
    return {
        "allow_origins": list(origins),
        "allow_methods": ["GET", "POST", "OPTIONS"],
        "allow_headers": list(_REQUEST_HEADERS),
        "expose_headers": list(_EXPOSED),
        "allow_credentials": False,
        "max_age": 600,
    }
