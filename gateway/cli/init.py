"""``dsgo init DIR --party-id ID --name NAME --base-iri IRI``: a party's node, ready to join.

Writes into DIR (files already there are kept, so running it again completes a folder):

    keys/                 key.pem + cert.pem + chain.pem signed by a development CA (--ca),
                          or key.pem + request.csr.pem for a real CA
    node.toml             the node, every setting shown with its default
    policies/policy.yaml  shares nothing with other parties; a commented example rule
    data/example.ttl      an example source to replace with the party's data
    registry-entry.toml   the party's [[party]] entry, to hand to the registry's operator
                          (``dsgo registry add REGISTRY.toml --from DIR``); written once
                          the certificate is there

With ``--registry URL`` the registry's party id is asked from its ``/health``; the CA the
registry's certificate chains to is ``--ca``'s root or ``--trust FILE``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from gateway.cli.args import base_url, party_id
from gateway.cli.registry import ENTRY_FILE
from gateway.errors import GatewayError

__all__ = ["add_parser"]

_BAG_PAND = "https://bag.basisregistraties.overheid.nl/id/pand/0363100012000001"


@dataclass(frozen=True, slots=True)
class _Plan:
    folder: Path
    party_id: str
    name: str
    base_iri: str
    port: int
    endpoint: str
    roles: tuple[str, ...]
    registry_url: str | None
    registry_id: str | None
    trust: tuple[Path, ...]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "init", help="make a party's node in a folder: keys, node.toml, policy, registry entry"
    )
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument("--party-id", required=True, type=party_id, help="the party's iSHARE id")
    p.add_argument("--name", required=True, help="the organisation's name")
    p.add_argument(
        "--base-iri", required=True, type=_namespace, metavar="IRI", help="its namespace, ending in /"
    )
    p.add_argument("--registry", type=base_url, metavar="URL", help="the federation's registry")
    p.add_argument("--registry-id", type=party_id, help="the registry's party id (default: asked from it)")
    p.add_argument("--ca", type=Path, metavar="DIR", help="sign with this development CA (dsgo keys ca)")
    p.add_argument(
        "--trust",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a CA certificate the registry's chains to (default: --ca's root; repeatable)",
    )
    p.add_argument("--port", type=int, default=8100, help="the port the node listens on (default 8100)")
    p.add_argument(
        "--endpoint", type=base_url, metavar="URL", help="where others reach it (default: its port here)"
    )
    p.add_argument(
        "--role", action="append", help="a registry role (default ServiceProvider, ServiceConsumer)"
    )
    p.set_defaults(run=run)


def _namespace(value: str) -> str:
    if not value.startswith(("http://", "https://")) or not value.endswith("/") or " " in value:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected a namespace IRI ending in '/', e.g. https://data.firm.example/"
        )
    return value


def run(args: argparse.Namespace) -> int:
    plan = _plan(args)
    folder = plan.folder
    fingerprint = _keys(folder / "keys", plan, args.ca)
    _write(folder / "node.toml", _node_toml(plan))
    _write(folder / "policies" / "policy.yaml", _policy(plan))
    _write(folder / "data" / "example.ttl", _example(plan))
    if fingerprint is None:
        print(f"  {ENTRY_FILE} follows once keys/cert.pem is there: run this command again then")
        return 0
    entry = _entry(plan, fingerprint)
    _write(folder / ENTRY_FILE, entry)
    print(f"\nThe entry for the registry's operator (dsgo registry add REGISTRY.toml --from {folder}):\n")
    print(entry.split("\n", 2)[2].rstrip())
    print(f"\nThen run the node: dsgo serve {folder / 'node.toml'}")
    return 0


def _plan(args: argparse.Namespace) -> _Plan:
    trust = tuple(args.trust) or ((args.ca / "root.cert.pem",) if args.ca else ())
    registry_id = args.registry_id
    if args.registry and registry_id is None:
        registry_id = _registry_id(args.registry)
    if args.registry and not trust:
        raise GatewayError("name the CA the registry's certificate chains to: --trust FILE (or --ca DIR)")
    for file in trust:
        if not file.is_file():
            raise GatewayError(f"{file}: no such CA certificate file")
    return _Plan(
        folder=args.dir,
        party_id=args.party_id,
        name=args.name,
        base_iri=args.base_iri,
        port=args.port,
        endpoint=args.endpoint or f"http://127.0.0.1:{args.port}",
        roles=tuple(args.role or ("ServiceProvider", "ServiceConsumer")),
        registry_url=args.registry,
        registry_id=registry_id,
        trust=trust,
    )


def _registry_id(url: str) -> str:
    import httpx

    try:
        found = httpx.get(f"{url}/health", timeout=5).json().get("party_id")
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        raise GatewayError(
            f"cannot ask the registry at {url}/health ({type(exc).__name__}); pass --registry-id"
        ) from None
    if not isinstance(found, str):
        raise GatewayError(f"{url}/health does not name the registry's party id; pass --registry-id")
    return found


def _keys(folder: Path, plan: _Plan, ca: Path | None) -> str | None:
    """The party's keys (kept when there); the certificate's fingerprint, once it exists."""
    from gateway.identity.pki import fingerprint, load_identity, make_party, make_request

    if (folder / "chain.pem").exists():
        identity = load_identity(folder)
        if identity.party_id != plan.party_id:
            raise GatewayError(f"{folder}: holds {identity.party_id}'s keys, not {plan.party_id}'s")
        print(f"kept {folder} ({plan.party_id}'s key and certificate)")
        return fingerprint(identity.chain[0])
    if ca is not None:
        for path in make_party(plan.party_id, folder, ca, name=plan.name):
            print(f"wrote {path}")
        return fingerprint(load_identity(folder).chain[0])
    if not (folder / "key.pem").exists():
        for path in make_request(plan.party_id, folder, name=plan.name):
            print(f"wrote {path}")
    print(
        f"  have {folder / 'request.csr.pem'} signed by a CA the federation trusts; save the certificate"
        f" as {folder / 'cert.pem'} and it with its CA chain (leaf first) as {folder / 'chain.pem'}"
    )
    return None


def _write(path: Path, text: str) -> None:
    if path.exists():
        print(f"kept {path}")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")


def _q(text: str | None) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()


def _registry_table(plan: _Plan) -> str:
    if plan.registry_url is None:
        return (
            "# The federation's participant registry: ask its operator for these three values.\n"
            "# [registry]\n"
            '# url = "http://127.0.0.1:8000"\n'
            '# party_id = "EU.EORI.NL000000000"          # the registry\'s own party id\n'
            '# ca = ["../keys/ca/root.cert.pem"]         # CA(s) its certificate chains to\n'
            "# refresh = 60.0                             # seconds before an answer is asked again\n"
            "# lifetime = 600.0                           # seconds a cached answer serves while it is down\n"
        )
    ca = ", ".join(_q(_relative(f, plan.folder)) for f in plan.trust)
    return (
        "[registry]                                  # the federation's participant registry\n"
        f"url = {_q(plan.registry_url)}\n"
        f"party_id = {_q(plan.registry_id)}\n"
        f"ca = [{ca}]\n"
        "# refresh = 60.0                             # seconds before an answer is asked again\n"
        "# lifetime = 600.0                           # seconds a cached answer serves while it is down\n"
    )


def _node_toml(plan: _Plan) -> str:
    run = f"dsgo serve {plan.folder / 'node.toml'}"
    return f"""# {plan.name}'s node, made by `dsgo init`. Run it with `{run}`.
# Paths are relative to this file; DSGO_<TABLE>_<KEY> environment variables override single
# values (DSGO_NODE_PORT=9000). Commented lines show the defaults.
[node]
party_id = {_q(plan.party_id)}
name = {_q(plan.name)}
base_iri = {_q(plan.base_iri)}               # the namespace its resources' IRIs live in
host = "127.0.0.1"                          # 0.0.0.0 to be reachable from other machines
port = {plan.port}
# store = "state/store"                     # keep the store on disk (default: in memory)
# poll_interval = 2.0                       # seconds between checks for changed sources
# audit = "state/audit.sqlite"              # the hash-chained log of every read
# redis = "redis://127.0.0.1:6379/0"        # a jti cache shared by several workers
# sparql_timeout = 10.0
# sparql_max_results = 10000

[[source]]                                  # one table per source: rdf, csv, ifc or sparql
name = "example"
type = "rdf"
path = "data/example.ttl"

[keys]
dir = "keys"                                # key.pem + chain.pem

{_registry_table(plan)}
[policies]
dir = "policies"                            # YAML files; nothing is shared that they do not grant
# authorization_registries = []             # ARs whose delegation evidence callers may bring

# [federation]                              # federated questions asked at this node
# clients = []                              # parties besides this one that may ask
# max_documents = 2000
# timeout = 10.0
# node_timeout = 5.0
# concurrency = 4
"""


def _policy(plan: _Plan) -> str:
    return f"""# {plan.name}'s policy: other parties see nothing until a rule grants it (default deny;
# deny rules win). Check it with `dsgo policy check {plan.folder / "node.toml"}`.
version: 1
rules:
  - id: own-data
    description: the party's own node shows it everything
    effect: permit
    to: {{parties: [{plan.party_id}]}}
    resources: all
    fields: all

  # An example: buildings' labels and BAG links, to every party of the federation.
  # - id: buildings-public
  #   effect: permit
  #   to: {{anyone: true}}                   # or parties: [EU.EORI...], or roles: [...]
  #   resources: {{classes: [bot:Building]}}
  #   fields: [rdf:type, rdfs:label, dsgo:bagPand]
  #   purpose: showing which buildings we hold data of
"""


def _example(plan: _Plan) -> str:
    return f"""# An example source of {plan.name}: replace it with the party's own data. Relative IRIs
# resolve against the node's namespace ({plan.base_iri}).
@prefix bot:  <https://w3id.org/bot#> .
@prefix dsgo: <https://vocab.dsgo.example/def#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .

<id/building/1> a bot:Building ;
    rdfs:label "Example building of {plan.name}" ;
    dsgo:bagPand <{_BAG_PAND}> .             # the BAG pand it is (an example id)
"""


def _entry(plan: _Plan, fingerprint: str) -> str:
    roles = ", ".join(_q(r) for r in plan.roles)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    return f"""# {plan.name}'s entry for the federation's registry, made by `dsgo init`: hand it to the
# registry's operator, who appends it with `dsgo registry add REGISTRY.toml --from DIR`.
[[party]]
id = {_q(plan.party_id)}
name = {_q(plan.name)}
status = "Active"
start = {today}
fingerprints = ["{fingerprint}"]            # SHA-256 of keys/cert.pem (x5t#S256)
roles = [{roles}]
namespaces = [{_q(plan.base_iri)}]
endpoint = {_q(plan.endpoint)}
"""
