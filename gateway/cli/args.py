"""What every ``dsgo`` command shares: a parser whose errors are one line, and argument
types that refuse a value with what to write instead.

Exit status of every command (the ``grep``/``diff`` convention): 0 done, 1 done but the
result has problems (a check found some, an answer is incomplete), 2 an error, of usage
or of what the command met (one line ``dsgo: ...`` on stderr, never a traceback), 130
interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn
from urllib.parse import urlsplit

from gateway.config import PARTY_ID

__all__ = ["OneLineParser", "absolute_iri", "base_url", "party_id"]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that says where to read more."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def base_url(value: str) -> str:
    """A node's or registry's address: ``http(s)://host[:port]``, no path, query or fragment."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{value!r} is not a URL; write it as http://HOST:PORT")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"{value!r}: give the base URL only, http://HOST:PORT")
    return f"{parts.scheme}://{parts.netloc}"


def absolute_iri(value: str) -> str:
    """A resource's full IRI: ``https://data.example/id/thing/1``, not a relative one."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in value for c in ' <>"{}|\\^`'):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an absolute IRI; write it in full, e.g. https://data.example/id/building/1"
        )
    return value


def party_id(value: str) -> str:
    """An iSHARE party id: ``EU.EORI.<country><number>`` or ``did:ishare:...``."""
    if not PARTY_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an iSHARE party id (e.g. EU.EORI.NL000000001)")
    return value
