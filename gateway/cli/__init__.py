"""The ``dsgo`` command line. Errors are one clear line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from gateway.config import NodeSettings, load_node_settings
from gateway.errors import GatewayError

__all__ = ["main"]


def _settings(args: argparse.Namespace) -> NodeSettings:
    env = dict(os.environ)
    if getattr(args, "host", None):
        env["DSGO_NODE_HOST"] = args.host
    if getattr(args, "port", None) is not None:
        env["DSGO_NODE_PORT"] = str(args.port)
    return load_node_settings(args.config, env)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.http.app import create_app

    settings = _settings(args)
    _logging(args.verbose)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info" if args.verbose else "warning",
        access_log=args.verbose,
        server_header=False,
    )
    return 0


def _logging(verbose: bool) -> None:
    """The node's own messages (sources read, policies reloaded, failures); every outbound
    request only with --verbose."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)


def cmd_keys_ca(args: argparse.Namespace) -> int:
    from gateway.identity.pki import make_ca

    for path in make_ca(args.dir, force=args.force):
        print(f"wrote {path}")
    return 0


def cmd_keys_party(args: argparse.Namespace) -> int:
    from gateway.config import PARTY_ID
    from gateway.identity.pki import make_party

    if not PARTY_ID.fullmatch(args.party_id):
        raise GatewayError(f"{args.party_id!r} is not an iSHARE party id (e.g. EU.EORI.NL000000001)")
    folder = args.dir or args.ca.parent / args.party_id
    for path in make_party(args.party_id, folder, args.ca, name=args.name, force=args.force):
        print(f"wrote {path}")
    return 0


def cmd_registry(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.registry import create_registry_app, load_registry_settings

    settings = load_registry_settings(args.config)
    _logging(args.verbose)
    uvicorn.run(
        create_registry_app(settings),
        host=args.host or settings.host,
        port=args.port if args.port is not None else settings.port,
        log_level="info" if args.verbose else "warning",
        access_log=args.verbose,
        server_header=False,
    )
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Obtain an access token from another node as this node's party; print it."""
    import asyncio

    from gateway.http.app import make_auth, outbound_http

    settings = load_node_settings(args.config)
    if settings.open:
        raise GatewayError(f"{settings.file}: an open node has no identity to ask a token with")

    async def run() -> str:
        async with outbound_http() as http:
            auth = make_auth(settings, http, time.time)
            registry = auth.trust
            assert hasattr(registry, "parties") and hasattr(registry, "tokens")
            target = args.to.rstrip("/")
            party = args.party
            if party is None:
                owners = [
                    p.party_id for p in await registry.parties() if (p.endpoint or "").rstrip("/") == target
                ]
                if not owners:
                    raise GatewayError(f"no party in the registry answers at {target}; name it with --party")
                party = owners[0]
            token: str = await registry.tokens.token(party, target)
            return token

    print(asyncio.run(run()))
    return 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    from gateway.policy.load import load_policies, policy_files
    from gateway.policy.report import grant_table
    from gateway.vocab import load_vocab

    settings = load_node_settings(args.config)
    if settings.policies_dir is None:
        raise GatewayError(f"{settings.file}: no [policies] dir: this node shares nothing (default deny)")
    files = policy_files(settings.policies_dir)
    vocab = load_vocab()
    policies = load_policies(files, vocab)
    print(f"{len(policies.rules)} rules in {len(files)} file(s) under {settings.policies_dir}: OK")
    rows = [("PARTY", "CLASS", "FIELDS", "RULE"), *grant_table(policies, vocab)]
    widths = [min(max(len(r[i]) for r in rows), 40) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[3])
    print("Anything not listed is withheld (default deny); deny rules win over permits.")
    return 0


def cmd_policy_explain(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from gateway.node import Node
    from gateway.policy.model import Caller

    settings = replace(load_node_settings(args.config), store_path=None)  # a private in-memory copy
    node = Node(settings)
    try:
        node.sources.refresh_all()
        reasons = node.access.explain(Caller(args.party, frozenset(args.role or ())), args.resource)
    finally:
        node.close()
    if not reasons:
        raise GatewayError(f"no resource {args.resource} in this node's sources")
    vocab = node.vocab
    width = max(len(vocab.curie(r.field)) for r in reasons)
    print(f"{args.resource} as {args.party} sees it:")
    for r in reasons:
        mark = "released" if r.released else "withheld"
        print(f"  {vocab.curie(r.field).ljust(width)}  {mark}  {r.reason}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsgo", description="DSGO federated building-data gateway")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run a node")
    p.add_argument("config", type=Path, metavar="NODE.toml")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    p.set_defaults(run=cmd_serve)

    p = sub.add_parser("registry", help="run a participant registry (iSHARE satellite subset)")
    p.add_argument("config", type=Path, metavar="REGISTRY.toml")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    p.set_defaults(run=cmd_registry)

    keys = sub.add_parser("keys", help="development PKI: a test CA and party certificates")
    ksub = keys.add_subparsers(dest="keys_command", required=True, metavar="WHAT")
    p = ksub.add_parser("ca", help="create the development root and issuing CA")
    p.add_argument("--dir", type=Path, default=Path("keys/ca"), help="where to write (default keys/ca)")
    p.add_argument("--force", action="store_true", help="replace existing files (new keys!)")
    p.set_defaults(run=cmd_keys_ca)
    p = ksub.add_parser("party", help="a key and certificate for a party, signed by the development CA")
    p.add_argument("party_id", metavar="PARTY_ID")
    p.add_argument("--dir", type=Path, help="where to write (default: keys/PARTY_ID beside the CA)")
    p.add_argument("--ca", type=Path, default=Path("keys/ca"), help="the CA folder (default keys/ca)")
    p.add_argument("--name", help="the organisation's name (certificate CN)")
    p.add_argument("--force", action="store_true", help="replace existing files (new keys!)")
    p.set_defaults(run=cmd_keys_party)

    policy = sub.add_parser("policy", help="check and explain the node's policies")
    psub = policy.add_subparsers(dest="policy_command", required=True, metavar="WHAT")
    p = psub.add_parser("check", help="validate the policy files, print party x class -> fields")
    p.add_argument("config", type=Path, metavar="NODE.toml")
    p.set_defaults(run=cmd_policy_check)
    p = psub.add_parser("explain", help="each field of a resource: released by which rule, or why not")
    p.add_argument("config", type=Path, metavar="NODE.toml")
    p.add_argument("--party", required=True, help="the reading party's id")
    p.add_argument("--role", action="append", help="a registry role of that party (repeatable)")
    p.add_argument("--resource", required=True, metavar="IRI")
    p.set_defaults(run=cmd_policy_explain)

    p = sub.add_parser("token", help="obtain an access token from another node, print it")
    p.add_argument("--as", dest="config", type=Path, required=True, metavar="NODE.toml")
    p.add_argument("--to", required=True, metavar="URL", help="the other node's base URL")
    p.add_argument("--party", help="the other node's party id (default: looked up in the registry)")
    p.set_defaults(run=cmd_token)

    from gateway.cli import audit, demo, query, source_check

    for module in (source_check, audit, query, demo):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except GatewayError as exc:
        print(f"dsgo: {exc.detail}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `dsgo policy check | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
