"""The ``dsgo`` command line. Errors are one clear line on stderr; exit status 0 done,
1 done with problems, 2 an error, 130 interrupted (see ``gateway.cli.args``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.cli.args import OneLineParser, absolute_iri, base_url, party_id
from gateway.cli.serving import announce
from gateway.config import NodeSettings, load_node_settings
from gateway.errors import GatewayError, KeyFileError

__all__ = ["main"]


def _settings(args: argparse.Namespace) -> NodeSettings:
    env = dict(os.environ)
    if getattr(args, "host", None):
        env["DSGO_NODE_HOST"] = args.host
    if getattr(args, "port", None) is not None:
        env["DSGO_NODE_PORT"] = str(args.port)
    return load_node_settings(args.config, env)


def cmd_serve(args: argparse.Namespace) -> int:
    """One process, or ``--workers N`` processes on one port (see ``gateway.http.app.from_env``)."""
    import uvicorn

    from gateway.http.app import check_workers, create_app

    settings = _settings(args)
    _logging(args.verbose)
    check_workers(settings, args.workers)
    announce(_serving(settings), args.verbose)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "access_log": args.verbose,
        "server_header": False,
    }
    if args.workers == 1:
        uvicorn.run(create_app(settings), **common)
        return 0
    # each worker builds its own app from the same file and overrides
    os.environ.update(DSGO_CONFIG=str(settings.file), DSGO_NODE_HOST=settings.host)
    os.environ["DSGO_NODE_PORT"] = str(settings.port)
    uvicorn.run("gateway.http.app:from_env", factory=True, workers=args.workers, **common)
    return 0


def _workers(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise argparse.ArgumentTypeError("a number of processes from 1 to 64")
    return int(value)


def _serving(settings: NodeSettings) -> str:
    sources = ", ".join(f"{s.name} ({s.kind})" for s in settings.sources) or "none"
    shared = (
        "open: every caller reads everything"
        if settings.open
        else "policies: " + str(settings.policies_dir or "none, it shares nothing")
    )
    return (
        f"{settings.name} ({settings.party_id}) serves {settings.base_iri} from sources {sources}; {shared}"
    )


def _logging(verbose: bool) -> None:
    """The node's own messages (sources read, policies reloaded, failures); every outbound
    request only with --verbose."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)


def cmd_keys_ca(args: argparse.Namespace) -> int:
    from gateway.identity.pki import make_ca

    if not args.force and _kept(
        args.dir, ("root.cert.pem", "root.key.pem", "issuing.cert.pem", "issuing.key.pem")
    ):
        print(
            f"kept {args.dir}: a CA is there already (--force makes a new one, invalidating its certificates)"
        )
        return 0
    for path in make_ca(args.dir, force=args.force):
        print(f"wrote {path}")
    return 0


def _kept(folder: Path, names: Sequence[str]) -> bool:
    """Whether all of a key set is there (keep it); part of one is an error to look at."""
    present = [n for n in names if (folder / n).exists()]
    if present and len(present) < len(names):
        missing = sorted(set(names) - set(present))
        raise KeyFileError(
            f"{folder}: has {present[0]} but not {missing[0]}; move the folder away or pass --force"
        )
    return bool(present)


def cmd_keys_party(args: argparse.Namespace) -> int:
    from gateway.identity.pki import load_identity, make_party

    folder = args.dir or args.ca.parent / args.party_id
    if not args.force and _kept(folder, ("key.pem", "cert.pem", "chain.pem")):
        found = load_identity(folder).party_id
        if found != args.party_id:
            raise KeyFileError(f"{folder}: holds {found}'s keys, not {args.party_id}'s; choose another --dir")
        print(f"kept {folder}: {args.party_id} has keys there already (--force makes new ones)")
        return 0
    for path in make_party(args.party_id, folder, args.ca, name=args.name, force=args.force):
        print(f"wrote {path}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Obtain an access token from another node as this node's party; print it."""
    import asyncio

    from gateway.http.app import make_auth, outbound_http
    from gateway.identity.assertions import make_assertion

    settings = load_node_settings(args.config)
    if settings.open:
        raise GatewayError(f"{settings.file}: an open node has no identity to ask a token with")

    async def run() -> str:
        async with outbound_http() as http:
            auth = make_auth(settings, http, time.time)
            registry = auth.trust
            assert hasattr(registry, "parties") and hasattr(registry, "tokens")
            party = args.party or await _party_at(registry, args.to)
            if args.assertion:
                return make_assertion(registry.tokens.identity, party, time.time())
            token: str = await registry.tokens.token(party, args.to)
            return token

    print(asyncio.run(run()))
    return 0


async def _party_at(registry: Any, url: str) -> str:
    """The party whose registered endpoint is ``url``."""
    parties = await registry.parties()
    owners = [p.party_id for p in parties if (p.endpoint or "").rstrip("/") == url]
    if not owners:
        known = ", ".join(f"{p.endpoint}" for p in parties if p.endpoint) or "none"
        raise GatewayError(
            f"no party in the registry answers at {url} (registered: {known}); name it with --party"
        )
    return str(owners[0])


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
        raise GatewayError(
            f"no resource {args.resource} in this node's sources"
            f" (its resources are under {settings.base_iri})"
        )
    vocab = node.vocab
    width = max(len(vocab.curie(r.field)) for r in reasons)
    print(f"{args.resource} as {args.party} sees it:")
    for r in reasons:
        mark = "released" if r.released else "withheld"
        print(f"  {vocab.curie(r.field).ljust(width)}  {mark}  {r.reason}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="dsgo", description="DSGO federated building-data gateway")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run a node")
    p.add_argument("config", type=Path, metavar="NODE.toml")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=_workers, default=1, metavar="N", help="worker processes (default 1)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    p.set_defaults(run=cmd_serve)

    keys = sub.add_parser("keys", help="development PKI: a test CA and party certificates")
    ksub = keys.add_subparsers(dest="keys_command", required=True, metavar="WHAT")
    p = ksub.add_parser("ca", help="create the development root and issuing CA")
    p.add_argument("--dir", type=Path, default=Path("keys/ca"), help="where to write (default keys/ca)")
    p.add_argument("--force", action="store_true", help="replace existing files (new keys!)")
    p.set_defaults(run=cmd_keys_ca)
    p = ksub.add_parser("party", help="a key and certificate for a party, signed by the development CA")
    p.add_argument("party_id", type=party_id, metavar="PARTY_ID")
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
    p.add_argument("--party", required=True, type=party_id, help="the reading party's id")
    p.add_argument("--role", action="append", help="a registry role of that party (repeatable)")
    p.add_argument("--resource", required=True, type=absolute_iri, metavar="IRI", help="its full IRI")
    p.set_defaults(run=cmd_policy_explain)

    p = sub.add_parser("token", help="obtain an access token from another node, print it")
    p.add_argument("--as", dest="config", type=Path, required=True, metavar="NODE.toml")
    p.add_argument(
        "--to", required=True, type=base_url, metavar="URL", help="the other node, http://HOST:PORT"
    )
    p.add_argument("--party", type=party_id, help="the other node's party id (default: from the registry)")
    p.add_argument(
        "--assertion", action="store_true", help="print the signed client assertion (30 s) instead of a token"
    )
    p.set_defaults(run=cmd_token)

    from gateway.cli import audit, demo, init, notify, query, registry, source_check, user

    for module in (registry, init, source_check, audit, query, notify, demo, user):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from gateway.cli.registry import shorthand

    try:
        args = _parser().parse_args(shorthand(sys.argv[1:] if argv is None else list(argv)))
    except SystemExit as exc:  # --help (0) or a usage error, already printed in one line (2)
        return exc.code if isinstance(exc.code, int) else 2
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
