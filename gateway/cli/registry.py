"""``dsgo registry [serve] REGISTRY.toml`` and ``dsgo registry add REGISTRY.toml --from DIR``.

``serve`` runs the participant registry (``dsgo registry REGISTRY.toml`` is the same);
it reads its file again when the file changes, so ``add`` lets a party join a running
federation. ``add`` appends the ``[[party]]`` entry that ``dsgo init`` wrote into
``DIR/registry-entry.toml`` to the registry's file, after checking that the result still
loads and does not name the party twice; the file is replaced in one step (written
beside it, then renamed), so a running registry never reads half of it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.cli.serving import announce
from gateway.errors import ConfigError, GatewayError

__all__ = ["ENTRY_FILE", "add_parser", "shorthand"]

ENTRY_FILE = "registry-entry.toml"
_ACTIONS = {"serve", "add", "-h", "--help"}


def shorthand(argv: Sequence[str]) -> list[str]:
    """``dsgo registry FILE ...`` means ``dsgo registry serve FILE ...``."""
    argv = list(argv)
    if len(argv) > 1 and argv[0] == "registry" and argv[1] not in _ACTIONS:
        argv.insert(1, "serve")
    return argv


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    registry = sub.add_parser(
        "registry", help="run a participant registry (iSHARE satellite subset), or add a party to one"
    )
    actions = registry.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("serve", help="run the registry (the default: dsgo registry REGISTRY.toml)")
    p.add_argument("config", type=Path, metavar="REGISTRY.toml")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    p.set_defaults(run=_serve)
    p = actions.add_parser("add", help="append the registry entry `dsgo init` made for a party")
    p.add_argument("config", type=Path, metavar="REGISTRY.toml")
    p.add_argument("--from", dest="node", type=Path, required=True, metavar="DIR", help="the party's folder")
    p.set_defaults(run=_add)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.cli import _logging
    from gateway.registry import create_registry_app, load_registry_settings

    settings = load_registry_settings(args.config)
    _logging(args.verbose)
    ids = ", ".join(p.party_id for p in settings.parties) or "none yet"
    announce(
        f"registry {settings.name} ({settings.party_id}) serves {len(settings.parties)} parties ({ids})",
        args.verbose,
    )
    uvicorn.run(
        create_registry_app(settings),
        host=args.host or settings.host,
        port=args.port if args.port is not None else settings.port,
        log_level="info",
        access_log=args.verbose,
        server_header=False,
    )
    return 0


def _add(args: argparse.Namespace) -> int:
    from gateway.registry import load_registry_settings

    entry_file = args.node / ENTRY_FILE
    try:
        entry = entry_file.read_text(encoding="utf-8")
        party = tomllib.loads(entry)["party"][0]
    except FileNotFoundError:
        raise GatewayError(f"{entry_file}: no such file; make the folder with `dsgo init`") from None
    except (OSError, tomllib.TOMLDecodeError, KeyError, IndexError, TypeError) as exc:
        raise ConfigError(entry_file, "", f"expected one [[party]] table ({exc})") from None
    current = load_registry_settings(args.config)  # the file must be good before and after
    if any(p.party_id == party.get("id") for p in current.parties):
        raise GatewayError(f"{args.config}: already lists {party.get('id')}; edit that entry instead")
    text = args.config.read_text(encoding="utf-8")
    new = text.rstrip("\n") + "\n\n" + entry.strip("\n") + "\n"
    _replace(args.config, new, load_registry_settings)
    print(
        f"added {party.get('id')} ({party.get('name')}) to {args.config};"
        " a running registry serves it within a second"
    )
    return 0


def _replace(file: Path, text: str, check: Callable[[Path], object]) -> None:
    """Write ``text`` beside ``file``, check it loads as the registry would, rename it over."""
    fd, name = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".toml", dir=file.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, file.stat().st_mode)
        try:
            check(tmp)
        except GatewayError as exc:
            raise GatewayError(exc.detail.replace(str(tmp), str(file)) + "; nothing was added") from None
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)
