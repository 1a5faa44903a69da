"""``dsgo demo``: the pilot federation, end to end, on this machine.

Runs ``examples/pilot`` of the source checkout it is installed from; installed from a
wheel, it copies the pilot the package carries (``gateway._pilot``) into ``./dsgo-pilot``
first (or into ``--root``), where its keys and audit logs go too.

Makes the development keys if they are missing, starts the registry and the four
nodes of ``examples/pilot`` on loopback ports (the same configuration files docker
compose uses), waits until all are healthy, asks the pilot's questions in turn (or the
one ``--question NAME`` names), each as the party that would ask it, prints each answer
and its report (which node supplied what, what was withheld and by whom), says where to
look at the nodes, and stops everything cleanly on Ctrl-C or SIGTERM (or at once with
``--once``). The registry and the nodes run in their own sessions, so a Ctrl-C reaches
the demo alone, which then stops each of them once. The questions are the SPARQL files
of ``examples/pilot/queries/`` listed in ``QUESTIONS``: what each asks is the first
paragraph of its comment, where its walk starts its ``# start:`` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import secrets
import signal
import subprocess
import sys
import time
import tomllib
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.cli.query import format_report, format_table, start_lines
from gateway.config import NodeSettings, load_node_settings
from gateway.errors import GatewayError
from gateway.identity.pki import make_ca, make_party
from gateway.vocab import load_vocab

__all__ = ["NODES", "QUESTIONS", "Question", "add_parser", "ask", "run"]

CHECKOUT = Path(__file__).resolve().parents[2]  # a source checkout: examples/ and keys/ beside gateway/
UNPACKED = Path("dsgo-pilot")
ASKER = "municipality"  # whose token the closing curl example uses
NODES = ("firm", "corporation", "municipality", "rvo")


@dataclass(frozen=True, slots=True)
class Question:
    name: str  # for --question
    asker: str  # the node (folder of examples/pilot) that asks it
    file: str  # in examples/pilot/queries/


QUESTIONS = (
    Question("labels", "municipality", "labels-and-insulation.rq"),
    Question("insulation", "corporation", "insulation-standard.rq"),
    Question("materials", "municipality", "biobased-materials.rq"),
    Question("optoppen", "corporation", "optoppen.rq"),
)


@dataclass(frozen=True, slots=True)
class _Pilot:
    folder: Path
    registry: Path
    registry_id: str
    registry_url: str
    names: dict[str, str]  # party id -> name
    nodes: dict[str, NodeSettings]  # folder name -> settings (after port overrides)
    env: dict[str, str]  # environment for the processes (port overrides)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="the pilot federation, end to end")
    p.add_argument("--once", action="store_true", help="stop after answering, instead of serving on")
    p.add_argument(
        "--root",
        type=Path,
        default=_default_root(),
        help="where examples/pilot and keys/ are (default: this folder or the checkout dsgo runs from,"
        f" if it has them, else {UNPACKED}/, where the pilot is copied)",
    )
    p.add_argument("--port", type=int, help="first of five free ports (default: the pilot's 8200-8204)")
    p.add_argument(
        "--question",
        choices=[q.name for q in QUESTIONS],
        help="ask only this question (default: all in turn)",
    )
    p.set_defaults(run=run)


def _default_root() -> Path:
    for root in (Path("."), CHECKOUT):
        if (root / "examples" / "pilot" / "registry.toml").is_file():
            return root
    return UNPACKED


def _unpack(root: Path, say: _Say) -> None:
    """The package's copy of the pilot, into ``root/examples/pilot`` unless one is there."""
    import importlib.util
    import shutil
    from importlib import resources

    if importlib.util.find_spec("ifcopenshell") is None:
        raise GatewayError(
            "the pilot's construction firm publishes IFC models: pip install 'dsgo-gateway[ifc]' first"
        )
    target = root / "examples" / "pilot"
    if (target / "registry.toml").exists():
        return
    packaged = Path(str(resources.files("gateway._pilot")))
    skip = shutil.ignore_patterns("__pycache__", "__init__.py", "state")
    shutil.copytree(packaged, target, ignore=skip, dirs_exist_ok=True)
    say(f"copied the pilot federation into {target} (its keys and audit logs go under {root} too)")


def _pilot(root: Path, port: int | None) -> _Pilot:
    folder = root / "examples" / "pilot"
    registry = folder / "registry.toml"
    try:
        config = tomllib.loads(registry.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GatewayError(f"{registry}: cannot be read ({exc})") from None
    names = {p["id"]: p.get("name", p["id"]) for p in config.get("party", [])}
    names[config["registry"]["party_id"]] = config["registry"].get("name", "registry")
    registry_url = f"http://127.0.0.1:{port or config['registry'].get('port', 8200)}"
    env: dict[str, str] = {}
    nodes = {}
    endpoints = []
    for i, name in enumerate(NODES, start=1):
        file = folder / name / "node.toml"
        overrides = {"DSGO_NODE_PORT": str(port + i), "DSGO_REGISTRY_URL": registry_url} if port else {}
        nodes[name] = load_node_settings(file, {**os.environ, **overrides})
        if port:
            endpoints.append(f"{nodes[name].party_id}=http://127.0.0.1:{port + i}")
    if port:
        env["DSGO_PARTY_ENDPOINTS"] = ",".join(endpoints)
    return _Pilot(folder, registry, config["registry"]["party_id"], registry_url, names, nodes, env)


def _keys(root: Path, pilot: _Pilot, say: _Say) -> None:
    keys = root / "keys"
    if not (keys / "ca" / "root.cert.pem").exists():
        say(f"making a development CA in {keys / 'ca'}")
        make_ca(keys / "ca")
    for party, name in pilot.names.items():
        if not (keys / party / "chain.pem").exists():
            say(f"making keys for {name} ({party})")
            make_party(party, keys / party, keys / "ca", name=name)


class _Say:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, line: str) -> None:
        print(f"[{time.monotonic() - self.started:5.1f}s] {line}", flush=True)


def _start(argv: list[str], env: dict[str, str], stack: ExitStack) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", *argv], env={**os.environ, **env}, start_new_session=True
    )

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    stack.callback(stop)
    return proc


def _wait(urls: dict[str, str], procs: dict[str, subprocess.Popen[bytes]], within: float) -> None:
    pending = dict(urls)
    deadline = time.monotonic() + within
    with httpx.Client(timeout=1) as client:
        while pending:
            for name, url in list(pending.items()):
                if procs[name].poll() is not None:
                    raise GatewayError(
                        f"{name} exited with code {procs[name].returncode}; see its messages above"
                    )
                try:
                    if client.get(url + "/health").status_code == 200:
                        del pending[name]
                except httpx.TransportError:
                    pass
            if pending and time.monotonic() > deadline:
                raise GatewayError(f"not healthy within {within:.0f} s: {', '.join(pending)}")
            time.sleep(0.05)


def _accounts(pilot: _Pilot) -> dict[str, str]:
    """A "demo" operator account on every node's workbench, with a fresh password each run."""
    from gateway.web.accounts import add_account

    password = secrets.token_urlsafe(12)
    for settings in pilot.nodes.values():
        assert settings.workbench_accounts is not None
        add_account(
            settings.workbench_accounts, "demo", password, frozenset({"operator"}), "Demo", replace=True
        )
    return {"demo": password}


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo as Ctrl-C does: everything it started


def run(args: argparse.Namespace) -> int:
    # Ctrl-C (SIGINT) stops it too, even when started where SIGINT is ignored (a shell
    # without job control ignores it in background commands, and Python keeps that): the
    # demo says "serving until Ctrl-C", so an interrupt must stop it wherever it runs
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _interrupted)
    say = _Say()
    _unpack(args.root, say)
    pilot = _pilot(args.root, args.port)
    _keys(args.root, pilot, say)
    logins = _accounts(pilot)
    env = {**pilot.env, "DSGO_REGISTRY_URL": pilot.registry_url}
    urls = {"registry": pilot.registry_url} | {name: s.public_url for name, s in pilot.nodes.items()}
    with ExitStack() as stack:
        procs = {}
        registry_argv = ["registry", str(pilot.registry)]
        if args.port:
            registry_argv += ["--port", str(args.port)]
        say(f"starting the registry and {len(pilot.nodes)} nodes")
        procs["registry"] = _start(registry_argv, env, stack)
        for name, settings in pilot.nodes.items():
            procs[name] = _start(["serve", str(settings.file), "--port", str(settings.port)], env, stack)
        began = time.monotonic()
        _wait(urls, procs, 60)
        say(
            f"all healthy in {time.monotonic() - began:.1f} s: "
            + ", ".join(f"{n} {u}" for n, u in urls.items())
        )
        for question in QUESTIONS:
            if args.question in (None, question.name):
                _show(pilot, question, say)
        _where(pilot, urls, logins)
        if args.once:
            return 0
        say("serving until Ctrl-C")
        try:
            while all(p.poll() is None for p in procs.values()):
                time.sleep(0.5)
        except KeyboardInterrupt:
            print()
        say("stopping")
    return 0


def _show(pilot: _Pilot, question: Question, say: _Say) -> None:
    text = (pilot.folder / "queries" / question.file).read_text(encoding="utf-8")
    settings = pilot.nodes[question.asker]
    say(f"{pilot.names[settings.party_id]} asks ({question.name}): {_asked(text)}")
    answer, seconds = ask(settings, text)
    print()
    print(format_table(answer, load_vocab().curie))
    print()
    print(format_report(_named(answer, pilot.names), seconds))
    print()


def _asked(text: str) -> str:
    """The question a query file asks: the first paragraph of its leading comment."""
    lines: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#") or (not line.strip("# ") and lines):
            break
        if line.strip("# "):
            lines.append(line.lstrip("# ").rstrip())
    return " ".join(lines)


def ask(settings: NodeSettings, text: str) -> tuple[dict[str, Any], float]:
    """Ask ``text`` (a query file, with its ``# start:`` lines) at the node of ``settings``,
    as its own party, through its federated query route; the answer and the seconds taken."""
    from gateway.cli.query import _stream
    from gateway.http.app import make_auth, outbound_http

    body = {"query": text, "start": start_lines(text)}

    async def run() -> dict[str, Any]:
        async with outbound_http() as http:
            auth = make_auth(settings, http, time.time)
            token = await auth.trust.tokens.token(settings.party_id, settings.public_url)  # type: ignore[attr-defined]
            headers = {"authorization": f"Bearer {token}", "accept": "application/x-ndjson"}
            return await _stream(
                http, settings.public_url + "/federation/query", body, headers, io.StringIO()
            )

    began = time.monotonic()
    answer = asyncio.run(run())
    return answer, time.monotonic() - began


def _named(answer: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    report = dict(answer["report"])
    report["nodes"] = {f"{names.get(p, p)} ({p})": n for p, n in report["nodes"].items()}
    return {**answer, "report": report}


def _where(pilot: _Pilot, urls: dict[str, str], logins: dict[str, str]) -> None:
    """Hints that work as printed: with the ports in use and the ``dsgo`` that runs."""
    asker = pilot.nodes[ASKER]
    dsgo, config = _dsgo(), _shown(asker.file)
    moved = f"DSGO_REGISTRY_URL={pilot.registry_url} " if pilot.env else ""
    user, password = next(iter(logins.items()))
    print(f"In a browser: each party's workbench, user {user!r}, password {password!r} (made for this run):")
    for name in pilot.nodes:
        print(f"  {name:12} {urls[name]}/login")
    print("Look around: every data route wants a token, which `dsgo token` gets as a party.")
    print(f"  TOKEN=$({moved}{dsgo} token --as {config} --to {urls['firm']})")
    print(f'  curl -H "Authorization: Bearer $TOKEN" -H "Accept: text/html" {urls["firm"]}/')
    port = f"DSGO_NODE_PORT={asker.port} " if pilot.env else ""
    first = _shown(pilot.folder / "queries" / QUESTIONS[0].file)
    print(f"  {moved}{port}{dsgo} query --as {config} @{first}")


def _dsgo() -> str:
    """How to call the running ``dsgo``: by name when that is the one on PATH."""
    import shutil

    here = Path(sys.executable).parent / "dsgo"
    found = shutil.which("dsgo")
    if found and Path(found).resolve() == here.resolve():
        return "dsgo"
    return str(_shown(here))


def _shown(path: Path) -> Path:
    path = path.absolute()
    cwd = Path.cwd()
    return path.relative_to(cwd) if path.is_relative_to(cwd) else path
