"""The ``dsgo`` command line. Errors are one clear line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from gateway.config import NodeSettings, load_node_settings
from gateway.errors import GatewayError

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello" / "node.toml"


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info" if args.verbose else "warning",
        access_log=args.verbose,
        server_header=False,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the example node, show what it serves, keep serving until Ctrl-C."""
    settings = load_node_settings(HELLO)
    url = settings.public_url
    say = _printer()
    say(f"starting the example node {settings.name} ({settings.party_id}) on {url}")
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", str(HELLO)])
    try:
        with httpx.Client(base_url=url, timeout=5) as client:
            health = _wait_healthy(client, proc, 20.0)
            say(
                f"healthy: {sum(s['triples'] for s in health['sources'].values())} triples "
                f"from {len(health['sources'])} sources"
            )
            for title, path, accept in (
                ("What the node publishes (GET / as Turtle)", "/", "text/turtle"),
                (
                    "Its buildings (GET /collections/bot:Building)",
                    "/collections/bot:Building",
                    "text/turtle",
                ),
                ("One building as Turtle (GET /id/building/1)", "/id/building/1", "text/turtle"),
                ("The same building as JSON-LD", "/id/building/1", "application/ld+json"),
            ):
                answer = client.get(path, headers={"accept": accept})
                answer.raise_for_status()
                text = json.dumps(answer.json(), indent=2) if "json" in accept else answer.text.strip()
                say(f"\n=== {title}\n{text}")
        say(f"\nBrowse it: {url}/  (HTML in a browser; Turtle, JSON-LD or N-Triples by Accept)")
        if args.once:
            return 0
        say("Serving until Ctrl-C.")
        proc.wait()
        return proc.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        say("stopped.")


def _wait_healthy(client: httpx.Client, proc: subprocess.Popen[bytes], within: float) -> dict[str, dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise GatewayError(f"the node exited with code {proc.returncode} before it was healthy")
        try:
            answer = client.get("/health")
            if answer.status_code == 200:
                body: dict[str, dict] = answer.json()  # type: ignore[type-arg]
                return body
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise GatewayError(f"the node was not healthy within {within:.0f} s")


def _printer() -> Callable[[str], None]:
    return lambda line: print(line, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsgo", description="DSGO federated building-data gateway")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run a node")
    p.add_argument("config", type=Path, metavar="NODE.toml")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    p.set_defaults(run=cmd_serve)

    p = sub.add_parser("demo", help="start the example node and show what it serves")
    p.add_argument("--once", action="store_true", help="stop after showing, instead of serving on")
    p.set_defaults(run=cmd_demo)
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


if __name__ == "__main__":
    raise SystemExit(main())
