"""The project's one error tree.

Every error carries a stable machine ``code``, a human ``detail`` a user can act on,
and the HTTP ``status`` it becomes at the edge (as RFC 9457 problem+json, written in
exactly one place: ``gateway.http.problems``). Library errors are translated into
these at the boundary where they occur and never reach a route. A refusal may also
carry a stable ``reason``, finer than its ``code``: *which* check refused (every bad
client assertion is ``invalid_client``; ``chain_untrusted`` says why), so that clients
and tests act on a code, never on the text.

    GatewayError
    ├── ConfigError            a node/registry configuration file is wrong (CLI, 2)
    ├── SourceError            a data source cannot be read (file, line)
    │   └── RemoteContextError     a JSON-LD document asks for a context not in vocab/
    ├── KeyFileError           a key or certificate file is missing, exists, or is unreadable
    ├── PolicyError            a policy file is wrong (file, line, rule): never loaded, never half-used
    ├── StartError             a node's first load, in a process of its own, died
    └── HttpError              anything a request can cause
        ├── BadRequest             400 bad_request
        ├── NotFound               404 not_found
        ├── NotAcceptable          406 not_acceptable
        ├── Unauthorized           401 invalid_token (RFC 6750 §3.1, with WWW-Authenticate)
        ├── Forbidden              403 forbidden
        │   └── CsrfRefused            403 csrf_refused: a workbench form without its token, or cross-site
        ├── TooManyAttempts        429 too_many_attempts: workbench logins throttled (Retry-After)
        ├── UpstreamError          502 upstream_error: a peer or the registry answered wrongly
        ├── AuditUnavailable       503 audit_unavailable: reads refused while the audit log fails
        ├── InvalidSubscription    400 invalid_subscription: a subscription body is wrong
        │   ├── SubscriptionExpired    400 subscription_expired: its end_date has passed
        │   └── WebhookOutsideEndpoint 400 webhook_outside_endpoint: not the subscriber's own node
        ├── SubscriptionRefused    403 subscription_refused: nothing watched that the caller may read
        ├── InvalidSignature       401 invalid_signature: a notification's JWS does not hold
        ├── QueryLimit             400 query_limit: a query ran out of time or results
        ├── TooManyQueries         429 too_many_queries: the caller's own queries fill its share
        ├── Busy                   503 busy: the node cannot take more work now (or is stopping)
        └── OAuthError             RFC 6749 §5.2, at the token endpoints
            ├── InvalidRequest         400 invalid_request
            ├── InvalidClient          401 invalid_client
            ├── InvalidGrant           400 invalid_grant
            ├── UnsupportedGrantType   400 unsupported_grant_type
            ├── InvalidScope           400 invalid_scope
            └── TemporarilyUnavailable 503 temporarily_unavailable (fail closed)
                └── RegistryUnavailable    the participant registry cannot be reached (same code)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

__all__ = [
    "AuditUnavailable",
    "BadRequest",
    "Busy",
    "ConfigError",
    "CsrfRefused",
    "Forbidden",
    "GatewayError",
    "HttpError",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidSignature",
    "InvalidSubscription",
    "KeyFileError",
    "NotAcceptable",
    "NotFound",
    "OAuthError",
    "PolicyError",
    "QueryLimit",
    "RegistryUnavailable",
    "RemoteContextError",
    "SourceError",
    "StartError",
    "SubscriptionExpired",
    "SubscriptionRefused",
    "TemporarilyUnavailable",
    "TooManyAttempts",
    "TooManyQueries",
    "Unauthorized",
    "UnsupportedGrantType",
    "UpstreamError",
    "WebhookOutsideEndpoint",
    "refusal",
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


class KeyFileError(GatewayError):
    """A key or certificate file is missing, unreadable, or would be overwritten."""

    code = "key_file"
    title = "Key file problem"


class StartError(GatewayError):
    """The process doing a node's first load (``gateway.startup``) died or answered wrongly."""

    code = "start_failed"
    title = "The node could not start"


class PolicyError(GatewayError):
    """A policy file cannot be used: names the file, the line and the rule."""

    code = "policy_invalid"
    title = "Invalid policy"

    def __init__(self, file: Path | str, line: int | None, rule: str | None, reason: str) -> None:
        self.file, self.line, self.rule, self.reason = str(file), line, rule, reason
        where = f"{self.file}:{line}" if line else self.file
        super().__init__(f"{where}: " + (f"rule {rule!r}: " if rule else "") + reason)


class HttpError(GatewayError):
    """An error caused by a request; ``headers`` are added to its response, ``reason``
    (a stable snake_case code) to its problem+json."""

    def __init__(
        self, detail: str, headers: dict[str, str] | None = None, *, reason: str | None = None
    ) -> None:
        super().__init__(detail)
        self.headers = headers or {}
        self.reason = reason


class BadRequest(HttpError):
    code, status, title = "bad_request", 400, "Bad request"


class NotFound(HttpError):
    code, status, title = "not_found", 404, "Not found"


class NotAcceptable(HttpError):
    code, status, title = "not_acceptable", 406, "Not acceptable"


class Unauthorized(HttpError):
    """A missing, malformed, expired or foreign bearer token (RFC 6750 §3.1)."""

    code, status, title = "invalid_token", 401, "Unauthorized"

    def __init__(self, detail: str, realm: str = "dsgo", *, reason: str | None = None) -> None:
        challenge = f'Bearer realm="{realm}", error="invalid_token", error_description="{_quoted(detail)}"'
        super().__init__(detail, {"www-authenticate": challenge}, reason=reason)


class Forbidden(HttpError):
    code, status, title = "forbidden", 403, "Forbidden"


class CsrfRefused(Forbidden):
    code = "csrf_refused"


class TooManyAttempts(HttpError):
    code, status, title = "too_many_attempts", 429, "Too many attempts"


class UpstreamError(HttpError):
    code, status, title = "upstream_error", 502, "Bad gateway"


class InvalidSubscription(HttpError):
    code, status, title = "invalid_subscription", 400, "Invalid subscription"


class SubscriptionExpired(InvalidSubscription):
    code = "subscription_expired"


class WebhookOutsideEndpoint(InvalidSubscription):
    """A node posts only to the subscriber's own endpoint as the registry lists it."""

    code = "webhook_outside_endpoint"


class SubscriptionRefused(HttpError):
    code, status, title = "subscription_refused", 403, "Subscription refused"


class InvalidSignature(HttpError):
    code, status, title = "invalid_signature", 401, "Signature does not verify"


class QueryLimit(HttpError):
    code, status, title = "query_limit", 400, "Query limit reached"


class TooManyQueries(HttpError):
    """RFC 6585 §4: the caller has as many queries running and waiting as it may."""

    code, status, title = "too_many_queries", 429, "Too many queries"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, {"retry-after": str(retry_after)})


class Busy(HttpError):
    """RFC 9110 §15.6.4: the node cannot take the work now; ``Retry-After`` says when."""

    code, status, title = "busy", 503, "Busy"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, {"retry-after": str(retry_after)})


class OAuthError(HttpError):
    """An RFC 6749 §5.2 error; its ``code`` is the OAuth ``error`` value."""

    title = "Token request refused"


class InvalidRequest(OAuthError):
    code, status = "invalid_request", 400


class InvalidClient(OAuthError):
    code, status = "invalid_client", 401


class InvalidGrant(OAuthError):
    code, status = "invalid_grant", 400


class UnsupportedGrantType(OAuthError):
    code, status = "unsupported_grant_type", 400


class InvalidScope(OAuthError):
    code, status = "invalid_scope", 400


class TemporarilyUnavailable(OAuthError):
    code, status = "temporarily_unavailable", 503


class RegistryUnavailable(TemporarilyUnavailable):
    """The participant registry cannot be reached and no usable answer is cached: the node
    fails closed. Its own title, as a federated query (not only a token request) meets it."""

    title = "Participant registry unavailable"

    def __init__(self, detail: str, retry_after: int = 5) -> None:
        super().__init__(detail, {"retry-after": str(retry_after)})


class AuditUnavailable(HttpError):
    """Reads are refused while the audit log cannot be written and its queue is full
    (``node.audit_on_failure = "refuse"``, the default): no read without its record."""

    code, status, title = "audit_unavailable", 503, "Audit log unavailable"

    def __init__(self, detail: str, retry_after: int = 5) -> None:
        super().__init__(detail, {"retry-after": str(retry_after)})


def refusal(error: type[HttpError]) -> Callable[[str, str], HttpError]:
    """A ``fail(reason, detail)`` for the identity checks, raising ``error``."""

    def fail(reason: str, detail: str) -> HttpError:
        return error(detail, reason=reason)

    return fail


def _quoted(text: str) -> str:
    """RFC 6750 error_description: printable ASCII without quote or backslash."""
    return "".join(c for c in text if 0x20 <= ord(c) < 0x7F and c not in '"\\')[:200]
