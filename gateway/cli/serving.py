"""``dsgo serve`` and ``dsgo registry`` say in one line what they serve and where.

uvicorn logs where it listens once the socket is bound (in the supervisor too, when it
runs several workers); that record is replaced by the server's own line, printed to
stderr with the logs, so it appears only once the address answers and names the port
the operating system gave. The rest of uvicorn's start-up chatter is shown only with
``--verbose``; warnings and errors always.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["announce"]

_LISTENING = "Uvicorn running on"


class _Announce(logging.Filter):
    def __init__(self, what: str, verbose: bool) -> None:
        super().__init__()
        self.what, self.verbose = what, verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith(_LISTENING):
            url = record.getMessage().removeprefix(_LISTENING).split(" (")[0].strip()
            print(f"{self.what}; listening at {url} (Ctrl-C stops it)", file=sys.stderr, flush=True)
            return False
        return self.verbose or record.levelno >= logging.WARNING


def announce(what: str, verbose: bool) -> None:
    """Print ``what`` with the listening address once uvicorn has bound its socket."""
    logger = logging.getLogger("uvicorn.error")
    for old in [f for f in logger.filters if isinstance(f, _Announce)]:
        logger.removeFilter(old)
    logger.addFilter(_Announce(what, verbose))
