"""``dsgo audit verify NODE.toml`` and ``dsgo audit tail NODE.toml``.

``verify`` prints each problem, each gap (reads the log itself says it could not record:
a full queue, entries that could not be stored, a run that ended with reads unwritten)
and a last line with the head to export as an anchor; exit status 0 intact (gaps are
part of an intact chain, and are counted on that line), 1 broken, 2 an error (``dsgo: ...``).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from gateway.audit.verify import format_entry, tail, verify
from gateway.config import load_node_settings
from gateway.errors import GatewayError

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = subparsers.add_parser("audit", help="check or show the audit log of every read")
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("verify", help="recompute the hash chain: any entry edited, removed or moved?")
    p.add_argument("config", type=Path, metavar="NODE.toml")
    p.add_argument(
        "--anchor", metavar="SEQ:HASH", help="a head printed by an earlier verify: must still be there"
    )
    p.set_defaults(run=_cli_verify)
    p = actions.add_parser("tail", help="the latest reads, one line each, oldest first")
    p.add_argument("config", type=Path, metavar="NODE.toml")
    p.add_argument("-n", type=int, default=20, metavar="N", help="how many (default 20)")
    p.set_defaults(run=_cli_tail)


def _cli_path(config: Path) -> Path:
    settings = load_node_settings(config)
    if settings.audit_path is None:
        raise GatewayError(f"{settings.file}: node.audit is false, so this node keeps no audit log")
    return settings.audit_path


def _cli_verify(args: argparse.Namespace) -> int:
    anchor = None
    if args.anchor is not None:
        found = re.fullmatch(r"(\d+):([0-9a-f]{64})", args.anchor)
        if not found:
            raise GatewayError(f"--anchor: expected SEQ:HASH as verify prints it, got {args.anchor!r}")
        anchor = (int(found[1]), found[2])
    path = _cli_path(args.config)
    report = verify(path, anchor=anchor)
    for line in (*report.problems, *(f"gap: {g}" for g in report.gaps)):
        print(f"{path}: {line}")
    state = "intact" if report.ok else "BROKEN"
    gaps = f", {len(report.gaps)} gaps: {report.unrecorded} reads not recorded" if report.gaps else ""
    print(f"{path}: {state}, {report.entries} entries{gaps}, head {report.head[0]}:{report.head[1]}")
    return 0 if report.ok else 1


def _cli_tail(args: argparse.Namespace) -> int:
    for row in tail(_cli_path(args.config), args.n):
        print(format_entry(row))
    return 0
