"""``dsgo user add|remove|list NODE.toml [USER]``: the workbench's local accounts.

The password comes from a prompt (twice, not echoed) or, with ``--password-stdin``, from
the first line of standard input (for scripts). Removing an account ends its sessions.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from gateway.config import load_node_settings
from gateway.errors import GatewayError

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="the workbench's accounts: add, remove, list")
    usub = user.add_subparsers(dest="user_command", required=True, metavar="WHAT")
    p = usub.add_parser("add", help="add an account (or reset one with --force)")
    p.add_argument("config", help="the node's TOML file")
    p.add_argument("username")
    p.add_argument("--name", default="", help="the person's name, as pages show it")
    p.add_argument("--operator", action="store_true", help="may see the policy and the audit log")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--force", action="store_true", help="reset an existing account")
    p.set_defaults(run=_add)
    p = usub.add_parser("remove", help="remove an account and end its sessions")
    p.add_argument("config")
    p.add_argument("username")
    p.set_defaults(run=_remove)
    p = usub.add_parser("list", help="the accounts and their roles")
    p.add_argument("config")
    p.set_defaults(run=_list)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise GatewayError("the two passwords differ; nothing was changed")
    return first


def _add(args: argparse.Namespace) -> int:
    from gateway.web.accounts import add_account

    settings = load_node_settings(args.config)
    assert settings.workbench_accounts is not None
    roles = frozenset({"operator"} if args.operator else ())
    account = add_account(
        settings.workbench_accounts,
        args.username,
        _password(args.password_stdin),
        roles,
        args.name,
        replace=args.force,
    )
    print(f"{account.username} can log in at {settings.public_url}/login")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from gateway.web.accounts import remove_account

    settings = load_node_settings(args.config)
    assert settings.workbench_accounts is not None
    remove_account(settings.workbench_accounts, args.username)
    print(f"removed {args.username}; their sessions end at their next page")
    return 0


def _list(args: argparse.Namespace) -> int:
    from gateway.web.accounts import load_accounts

    settings = load_node_settings(args.config)
    assert settings.workbench_accounts is not None
    for account in sorted(
        load_accounts(settings.workbench_accounts).by_name.values(), key=lambda a: a.username
    ):
        roles = ",".join(sorted(account.roles)) or "-"
        print(f"{account.username}\t{roles}\t{account.name}")
    return 0
