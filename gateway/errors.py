"""The project's one error tree.

Every error carries a stable machine ``code``, a human ``detail`` a user can act on,
and the HTTP ``status`` it becomes at the edge (as RFC 9457 problem+json, written in
exactly one place: ``gateway.http.problems``). Library errors are translated into
these at the boundary where they occur and never reach a route.

    GatewayError
    ├── ConfigError            a node/registry configuration file is wrong (CLI, 2)
    ├── SourceError            a data source cannot be read (file, line)
    │   └── RemoteContextError     a JSON-LD document asks for a context not in vocab/
    └── HttpError              anything a request can cause
        ├── BadRequest             400 bad_request
        ├── NotFound               404 not_found
        └── NotAcceptable          406 not_acceptable
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BadRequest",
    "ConfigError",
    "GatewayError",
    "HttpError",
    "NotAcceptable",
    "NotFound",
    "RemoteContextError",
    "SourceError",
]


class GatewayError(Exception):
    """Base of every error the project raises on purpose."""

    code = "error"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ConfigError(GatewayError):
    """A configuration file is wrong: names the file, the key and what is expected."""

    code = "config_invalid"
    title = "Invalid configuration"

    def __init__(self, file: Path | str, key: str, expected: str) -> None:
        self.file, self.key, self.expected = str(file), key, expected
        where = f"{self.file}: {key}: " if key else f"{self.file}: "
        super().__init__(where + expected)


class SourceError(GatewayError):
    """A source (file, model, table, remote store) cannot be read."""

    code = "source_invalid"
    title = "Source cannot be read"

    def __init__(self, source: Path | str, reason: str, line: int | None = None) -> None:
        self.source, self.reason, self.line = str(source), reason, line
        where = f"{self.source}:{line}" if line is not None else self.source
        super().__init__(f"{where}: {reason}")


class RemoteContextError(SourceError):
    """JSON-LD contexts come from vocab/ only; a remote one is refused, never fetched."""

    code = "remote_context_refused"


class HttpError(GatewayError):
    """An error caused by a request; ``headers`` are added to its response."""

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.headers = headers or {}


class BadRequest(HttpError):
    code, status, title = "bad_request", 400, "Bad request"


class NotFound(HttpError):
    code, status, title = "not_found", 404, "Not found"


class NotAcceptable(HttpError):
    code, status, title = "not_acceptable", 406, "Not acceptable"
