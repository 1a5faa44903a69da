"""Node configuration: one TOML file per node, read once into a frozen value.

    [node]
    party_id = "EU.EORI.NL000000001"       # iSHARE-style party id (or did:ishare:...)
    name = "Hello Bouw B.V."
    base_iri = "https://data.hello.example/"   # the party's public namespace
    host = "127.0.0.1"                     # listen address
    port = 8100
    store = "state/store"                  # on-disk store; omit for in memory
    poll_interval = 2.0                    # seconds between checks for changed sources
    redis = "redis://127.0.0.1:6379/0"     # optional: jti replay cache shared by workers
    open = false                           # true: no authentication (local examples only)
    audit = "state/audit.sqlite"           # the audit log of every read (the default)
    audit_on_failure = "refuse"            # while the log fails and its queue is full: refuse
                                           # reads (503), or "serve" them and record the gap
    sparql_timeout = 10                    # seconds a /sparql query may run
    sparql_max_results = 10000             # rows (or triples) a /sparql answer may hold
    sparql_workers = 2                     # processes /sparql queries run in (killed on timeout)
    sparql_party_queue = 4                 # queries one party may have waiting beyond its running ones
    sparql_queue = 16                      # queries waiting in all (default: 8 per worker)

    [[source]]                             # one per data source, its own named graph
    name = "buildings"
    type = "rdf"
    path = "data/buildings.ttl"
    allow_empty = false                    # an empty source is an error (the last good version stays)

    [[source]]                             # or: a SPARQL 1.1 store read live, never copied;
    name = "warehouse"                     # it is then the node's only source
    type = "sparql"
    endpoint = "http://127.0.0.1:8890/sparql"
    graph = "urn:dsgo:firm"                # optional; default: the endpoint's default graph
    timeout = 5                            # optional; seconds per query
    cache_ttl = 2                          # optional; seconds an answer may be reused (0: never)
    watch = 30                             # optional; seconds between checks for changes others
                                           # make, for notifications (0: never, none offered)

    [keys]
    dir = "../keys/EU.EORI.NL000000001"    # key.pem + chain.pem (dsgo keys party)

    [registry]                             # the participant registry (iSHARE satellite)
    url = "http://127.0.0.1:8000"
    party_id = "EU.EORI.NL000000000"
    ca = ["../keys/ca/root.cert.pem"]      # CA(s) the registry's own certificate must chain to
    certificates = []                      # optional: the registry's own certificate(s), pinned
    refresh = 60                           # seconds before a registry answer is asked again
    lifetime = 600                         # seconds a cached answer may serve while it is down
    timeout = 2                            # seconds one look-up may take (a hung registry has failed)

    [policies]
    dir = "policies"                       # YAML policy files (see policies/schema.json)
    authorization_registries = []          # ARs whose delegation evidence callers may bring

    [federation]                           # federated queries asked at this node
    clients = []                           # parties besides this one that may ask
    max_documents = 2000                   # budgets of one query
    timeout = 10
    node_timeout = 5
    concurrency = 4                        # parallel requests per other node
    max_document_bytes = 16777216          # limits, enforced while answers stream in: one
    max_document_triples = 100000          # document, one POST /resources batch answer,
    max_batch_bytes = 33554432             # and the whole query; a peer past one is cut off
    max_batch_triples = 200000             # (named in the report), the others' parts are kept
    max_query_bytes = 67108864
    max_query_triples = 500000

    [workbench]                            # the browser workbench of the node's own people
    accounts = "state/accounts.json"       # local accounts (dsgo user add|remove|list)
    session_hours = 8                      # a login lasts this long
    questions = "queries"                  # optional: *.rq examples for the federated query form
    [notifications]                        # change notifications (gateway.notify)
    outbox = "state/outbox.sqlite"         # subscriptions and notifications to send
    inbox = "state/inbox.sqlite"           # notifications received for this party
    retry_base = 2                         # seconds before the first retry, doubling
    retry_longest = 3600                   # seconds between retries at most
    inactive_after_days = 3                # failing this long, a subscription turns inactive

Paths are relative to the file. ``DSGO_<SECTION>_<KEY>`` environment variables override
single values of the ``node``, ``keys``, ``registry``, ``policies``, ``federation`` and
``notifications`` tables (for example ``DSGO_NODE_PORT=9000``). Any mistake is one
``ConfigError`` naming the file, the key and what is expected, and the node does not start.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors import KINDS, Kind
from gateway.errors import ConfigError
from gateway.federation.limits import Limits

__all__ = ["PARTY_ID", "NodeSettings", "SourceSettings", "Table", "load_node_settings"]

PARTY_ID = re.compile(r"^(EU\.EORI\.[A-Z]{2}[A-Za-z0-9]{1,17}|did:ishare:[A-Za-z0-9._:-]{1,100})$")
_SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """One data source; ``options`` holds the connector's own keys (format, mapping, ...)."""

    name: str
    kind: str
    path: Path | None
    options: Mapping[str, Any] = field(default_factory=dict)
    #: an empty source is served as empty instead of being an error
    allow_empty: bool = False


@dataclass(frozen=True, slots=True)
class NodeSettings:
    file: Path
    party_id: str
    name: str
    base_iri: str
    host: str = "127.0.0.1"
    port: int = 8100
    store_path: Path | None = None
    poll_interval: float = 2.0
    sources: tuple[SourceSettings, ...] = ()
    keys_dir: Path | None = None
    registry_url: str | None = None
    registry_id: str | None = None
    registry_ca: tuple[Path, ...] = ()
    #: the registry's own certificates: when given, its answers must be signed with one
    registry_certificates: tuple[Path, ...] = ()
    registry_refresh: float = 60.0
    registry_lifetime: float = 600.0
    registry_timeout: float = 2.0
    policies_dir: Path | None = None
    redis_url: str | None = None
    open: bool = False
    #: the hash-chained audit log of every read (None: not kept, tests only)
    audit_path: Path | None = None
    #: "refuse" (reads get 503 while the log fails and its queue is full) or "serve"
    audit_on_failure: str = "refuse"
    sparql_timeout: float = 10.0
    sparql_max_results: int = 10_000
    #: worker processes for /sparql; a party may use all but one of them at once
    sparql_workers: int = 2
    #: queries one party may have waiting beyond its running ones (then 429)
    sparql_party_queue: int = 4
    #: queries waiting in all (then 503); None: 8 per worker
    sparql_queue: int | None = None
    #: authorization registries whose delegation evidence may widen a caller's grant
    authorization_registries: tuple[str, ...] = ()
    #: parties besides the node's own that may ask it federated questions
    federation_clients: tuple[str, ...] = ()
    federation_max_documents: int = 2000
    federation_timeout: float = 10.0
    federation_node_timeout: float = 5.0
    federation_concurrency: int = 4
    #: browser origins allowed to call the node (CORS); none by default, "*" for any
    cors_origins: tuple[str, ...] = ()
    #: the workbench's account file (its sessions live beside it)
    workbench_accounts: Path | None = None
    workbench_session_hours: float = 8.0
    #: a folder of example questions (*.rq) for the workbench's federated query form
    workbench_questions: Path | None = None
    #: bytes and triples per document, batch answer and query (``gateway.federation.limits``)
    federation_limits: Limits = field(default_factory=Limits)
    outbox_path: Path = Path("state/outbox.sqlite")
    inbox_path: Path = Path("state/inbox.sqlite")
    retry_base: float = 2.0
    retry_longest: float = 3600.0
    inactive_after_days: float = 3.0

    @property
    def public_url(self) -> str:
        """Where this node answers on this machine (not its namespace)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"


class Table:
    """Typed access to one TOML table, with errors naming file and dotted key."""

    def __init__(self, file: Path, prefix: str, data: Mapping[str, Any], allowed: set[str]):
        self.file, self.prefix, self.data = file, prefix, data
        for key in data:
            if key not in allowed:
                expected = "one of " + ", ".join(sorted(allowed)) if allowed else "no keys"
                raise ConfigError(file, self._key(key), f"unknown key (expected {expected})")

    def _key(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def get(self, key: str, conv: Callable[[Any], Any], expected: str, default: Any = None) -> Any:
        if key not in self.data:
            if default is _REQUIRED:
                raise ConfigError(self.file, self._key(key), f"missing; expected {expected}")
            return default
        try:
            return conv(self.data[key])
        except (TypeError, ValueError):
            got = self.data[key]
            raise ConfigError(self.file, self._key(key), f"expected {expected}, got {got!r}") from None


_REQUIRED = object()


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError
    return value


def _matching(pattern: re.Pattern[str]) -> Callable[[Any], str]:
    def conv(value: Any) -> str:
        if not pattern.fullmatch(_string(value)):
            raise ValueError
        return str(value)

    return conv


def _namespace(value: Any) -> str:
    text = _string(value)
    if not re.fullmatch(r"https?://[^\s/?#]+/[^\s?#]*", text) or not text.endswith("/"):
        raise ValueError
    return text


def _port(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError
    return value


def _positive(value: Any) -> float:
    if isinstance(value, str):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError
    return float(value)


def _bool(value: Any) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if not isinstance(value, bool):
        raise TypeError
    return value


def _redis(value: Any) -> str:
    text = _string(value)
    if not re.fullmatch(r"rediss?://\S+", text):
        raise ValueError
    return text


def _paths_under(base: Path) -> Callable[[Any], tuple[Path, ...]]:
    def conv(value: Any) -> tuple[Path, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise TypeError
        return tuple((base / _string(v)).resolve() for v in value)

    return conv


def _audit_path(base: Path) -> Callable[[Any], Path | None]:
    def conv(value: Any) -> Path | None:
        if value is False or (isinstance(value, str) and value.lower() == "false"):
            return None
        return (base / _string(value)).resolve()

    return conv


def _party_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and PARTY_ID.fullmatch(v) for v in value):
        raise ValueError
    return tuple(value)


def _count(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError
    return value


def _url(value: Any) -> str:
    text = _string(value)
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s]*)?", text):
        raise ValueError
    return text.rstrip("/")


def _path_under(base: Path) -> Callable[[Any], Path]:
    return lambda value: (base / _string(value)).resolve()


_ENV_TABLES: dict[str, set[str]] = {
    "node": {
        "party_id",
        "name",
        "base_iri",
        "host",
        "port",
        "store",
        "poll_interval",
        "redis",
        "open",
        "audit",
        "audit_on_failure",
        "sparql_timeout",
        "sparql_max_results",
        "cors_origins",
        "sparql_workers",
        "sparql_party_queue",
        "sparql_queue",
    },
    "keys": {"dir"},
    "registry": {"url", "party_id", "ca", "certificates", "refresh", "lifetime", "timeout"},
    "policies": {"dir", "authorization_registries"},
    "federation": {
        "clients",
        "max_documents",
        "timeout",
        "node_timeout",
        "concurrency",
        *(f"max_{scope}_{unit}" for scope in ("document", "batch", "query") for unit in ("bytes", "triples")),
    },
    "workbench": {"accounts", "session_hours", "questions"},
    "notifications": {"outbox", "inbox", "retry_base", "retry_longest", "inactive_after_days"},
}


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for table, keys in _ENV_TABLES.items():
        for key in keys:
            value = environ.get(f"DSGO_{table}_{key}".upper())
            if value is not None:
                data.setdefault(table, {})[key] = value


def load_node_settings(file: Path | str, environ: Mapping[str, str] | None = None) -> NodeSettings:
    """Read and check a node's TOML file; raise ``ConfigError`` on the first mistake."""
    file = Path(file)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(file, "", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, "", f"cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"not valid TOML ({exc})") from None
    _apply_env(data, os.environ if environ is None else environ)
    base = file.resolve().parent

    top = Table(file, "", data, {*_ENV_TABLES, "source"})
    node = Table(file, "node", top.get("node", _dict, "a [node] table", _REQUIRED), _ENV_TABLES["node"])
    sources = top.get("source", _list_of_tables, "[[source]] tables", [])
    names: set[str] = set()
    parsed: list[SourceSettings] = []
    for i, raw in enumerate(sources):
        parsed.append(_source(file, base, f"source[{i}]", raw, names))
    _one_live_source(file, parsed)
    keys = Table(file, "keys", top.get("keys", _dict, "a table", {}), _ENV_TABLES["keys"])
    registry = Table(file, "registry", top.get("registry", _dict, "a table", {}), _ENV_TABLES["registry"])
    federation = Table(
        file, "federation", top.get("federation", _dict, "a table", {}), _ENV_TABLES["federation"]
    )
    policies = Table(file, "policies", top.get("policies", _dict, "a table", {}), _ENV_TABLES["policies"])
    workbench = Table(file, "workbench", top.get("workbench", _dict, "a table", {}), _ENV_TABLES["workbench"])
    notes = Table(
        file, "notifications", top.get("notifications", _dict, "a table", {}), _ENV_TABLES["notifications"]
    )
    open_ = node.get("open", _bool, "true or false", False)
    settings = NodeSettings(
        file=file.resolve(),
        party_id=node.get(
            "party_id",
            _matching(PARTY_ID),
            "an iSHARE party id such as EU.EORI.NL000000001",
            _REQUIRED,
        ),
        name=node.get("name", _string, "the party's display name", _REQUIRED),
        base_iri=node.get(
            "base_iri",
            _namespace,
            "an http(s) IRI ending in '/', e.g. https://data.firm.example/",
            _REQUIRED,
        ),
        host=node.get("host", _string, "a host name or address", "127.0.0.1"),
        port=node.get("port", _port, "a port number 0-65535", 8100),
        store_path=node.get("store", _path_under(base), "a folder path for the on-disk store"),
        poll_interval=node.get("poll_interval", _positive, "a positive number of seconds", 2.0),
        sources=tuple(parsed),
        keys_dir=keys.get("dir", _path_under(base), "a folder path"),
        registry_url=registry.get("url", _url, "an http(s) URL"),
        registry_id=registry.get("party_id", _matching(PARTY_ID), "the registry's iSHARE party id"),
        registry_ca=registry.get("ca", _paths_under(base), "a list of CA certificate files", ()),
        registry_certificates=registry.get(
            "certificates", _paths_under(base), "a list of the registry's certificate files", ()
        ),
        registry_refresh=registry.get("refresh", _positive, "a positive number of seconds", 60.0),
        registry_lifetime=registry.get("lifetime", _positive, "a positive number of seconds", 600.0),
        registry_timeout=registry.get("timeout", _positive, "a positive number of seconds", 2.0),
        policies_dir=policies.get("dir", _path_under(base), "a folder path"),
        redis_url=node.get("redis", _redis, "a redis:// URL"),
        open=open_,
        audit_path=node.get(
            "audit", _audit_path(base), "a file path, or false", base / "state" / "audit.sqlite"
        ),
        audit_on_failure=node.get(
            "audit_on_failure", _one_of("refuse", "serve"), '"refuse" or "serve"', "refuse"
        ),
        sparql_timeout=node.get("sparql_timeout", _positive, "a positive number of seconds", 10.0),
        sparql_max_results=node.get("sparql_max_results", _count, "a positive whole number", 10_000),
        sparql_workers=node.get("sparql_workers", _count, "a positive whole number", 2),
        sparql_party_queue=node.get("sparql_party_queue", _count, "a positive whole number", 4),
        sparql_queue=node.get("sparql_queue", _count, "a positive whole number", None),
        federation_clients=federation.get("clients", _party_list, "a list of party ids", ()),
        authorization_registries=policies.get(
            "authorization_registries", _party_list, "a list of party ids", ()
        ),
        federation_max_documents=federation.get("max_documents", _count, "a positive whole number", 2000),
        federation_timeout=federation.get("timeout", _positive, "a positive number of seconds", 10.0),
        federation_node_timeout=federation.get("node_timeout", _positive, "positive seconds", 5.0),
        federation_concurrency=federation.get("concurrency", _count, "a positive whole number", 4),
        cors_origins=node.get(
            "cors_origins", _origins, 'a list of origins ("https://app.example", or "*" for any)', ()
        ),
        workbench_accounts=workbench.get(
            "accounts", _path_under(base), "a file path", (base / "state" / "accounts.json").resolve()
        ),
        workbench_session_hours=workbench.get("session_hours", _positive, "a positive number of hours", 8.0),
        workbench_questions=workbench.get("questions", _path_under(base), "a folder path"),
        federation_limits=_limits(federation),
        **_notifications(notes, base),
    )
    if not open_:
        needed = [
            ("keys.dir", settings.keys_dir, "the folder with this party's key.pem and chain.pem"),
            ("registry.url", settings.registry_url, "the participant registry's URL"),
            ("registry.party_id", settings.registry_id, "the registry's party id"),
            (
                "registry.ca",
                settings.registry_ca,
                "the CA certificate file(s) the registry's certificate chains to",
            ),
        ]
        for key, value, what in needed:
            if not value:
                raise ConfigError(
                    file, key, f"missing; expected {what} (or node.open = true for a local example)"
                )
    return settings


_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def _origins(value: Any) -> tuple[str, ...]:
    """CORS origins: scheme://host[:port] each (RFC 6454), or the one wildcard "*"."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError
    if value == ["*"] or all(_ORIGIN.match(v) for v in value):
        return tuple(v.rstrip("/") for v in value)
    raise TypeError


def _notifications(table: Table, base: Path) -> dict[str, Any]:
    seconds = "a positive number of seconds"
    return {
        "outbox_path": table.get(
            "outbox", _path_under(base), "a file path", base / "state" / "outbox.sqlite"
        ),
        "inbox_path": table.get("inbox", _path_under(base), "a file path", base / "state" / "inbox.sqlite"),
        "retry_base": table.get("retry_base", _positive, seconds, 2.0),
        "retry_longest": table.get("retry_longest", _positive, seconds, 3600.0),
        "inactive_after_days": table.get("inactive_after_days", _positive, "a positive number of days", 3.0),
    }


def _one_of(*choices: str) -> Callable[[Any], str]:
    def conv(value: Any) -> str:
        if value not in choices:
            raise ValueError
        return str(value)

    return conv


def _limits(federation: Table) -> Limits:
    """``[federation] max_{document,batch,query}_{bytes,triples}``, each a positive count."""
    defaults = Limits()
    values = {
        name: federation.get(f"max_{name}", _count, "a positive whole number", getattr(defaults, name))
        for name in Limits.__dataclass_fields__
    }
    return Limits(**values)


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError
    return value


def _list_of_tables(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise TypeError
    return value


def _source(file: Path, base: Path, prefix: str, raw: dict[str, Any], names: set[str]) -> SourceSettings:
    kind = Table(file, prefix, {"type": raw.get("type")} if "type" in raw else {}, {"type"})
    kind_name = kind.get(
        "type", _matching(re.compile("|".join(KINDS))), "one of " + ", ".join(KINDS), _REQUIRED
    )
    connector = KINDS[kind_name]
    allowed = {"name", "type", *connector.options} | (set() if connector.live else {"path", "allow_empty"})
    table = Table(file, prefix, raw, allowed)
    name = table.get("name", _matching(_SOURCE_NAME), "a short lowercase name (a-z, 0-9, -, _)", _REQUIRED)
    if name in names:
        raise ConfigError(file, f"{prefix}.name", f"expected a unique name; {name!r} is used twice")
    names.add(name)
    path = None
    if not connector.live:
        path = table.get("path", _path_under(base), "a file path relative to this file", _REQUIRED)
    options = _options(file, base, prefix, raw, connector)
    allow_empty = table.get("allow_empty", _bool, "true or false", False)
    return SourceSettings(name=name, kind=kind_name, path=path, options=options, allow_empty=allow_empty)


def _options(file: Path, base: Path, prefix: str, raw: dict[str, Any], connector: Kind) -> dict[str, Any]:
    """The connector's own keys of a [[source]] table, checked (paths made absolute)."""
    missing = sorted(connector.required - raw.keys())
    if missing:
        raise ConfigError(file, f"{prefix}.{missing[0]}", f"missing; {connector.options[missing[0]][1]}")
    options = {k: v for k, v in raw.items() if k in connector.options}
    for key, value in options.items():
        check, expected = connector.options[key]
        if not check(value):
            raise ConfigError(file, f"{prefix}.{key}", f"{expected}, got {value!r}")
        if key in connector.paths:
            options[key] = (base / value).resolve()
    return options


def _one_live_source(file: Path, sources: list[SourceSettings]) -> None:
    """A live store (``type = "sparql"``) is never copied into the node, so it is where
    every read goes: it must then be the node's one and only source."""
    live = [i for i, s in enumerate(sources) if KINDS[s.kind].live]
    if live and len(sources) > 1:
        i = live[1] if len(live) > 1 else next(i for i in range(len(sources)) if i not in live)
        raise ConfigError(
            file,
            f"source[{i}].type",
            "a node whose data is a SPARQL store reads only that store: it takes no other "
            "[[source]] (its data is not copied, so every read goes to the store)",
        )
