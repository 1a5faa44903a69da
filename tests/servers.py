"""Real processes for integration tests: Redis, `dsgo` nodes and a registry on loopback.

``federation`` writes a development PKI, a registry and node configurations into a
folder; ``process`` runs one `dsgo` command until it answers; ``redis_server`` runs a
throw-away ``redis-server`` (never the machine's own) on a free port;
``virtuoso_server`` runs a throw-away Virtuoso (Debian ``virtuoso-opensource``) whose
SPARQL endpoint accepts updates, so tests load and change its data over HTTP.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from gateway.identity.pki import Identity, load_identity, make_ca, make_party
from tests.conftest import BUILDING_TTL, NS, free_port

__all__ = [
    "CLIENT",
    "DSGO",
    "NODE",
    "REGISTRY",
    "Federation",
    "Relay",
    "Virtuoso",
    "federation",
    "free_port",
    "process",
    "redis_server",
    "relayed",
    "virtuoso_server",
]

DSGO = str(Path(sys.executable).parent / "dsgo")
REGISTRY = "EU.EORI.NL000000000"
NODE = "EU.EORI.NL000000001"
CLIENT = "EU.EORI.NL000000002"


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private ``redis-server`` on a free loopback port, in the foreground; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; .ci/run installs it (apt-get install redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    import redis

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with tempfile.TemporaryDirectory(prefix="redis-") as folder:
        argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
        argv += ["--dir", folder]
        log = Path(folder) / "redis.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            with redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1) as client:
                deadline = time.monotonic() + 10
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{log.read_text()}")
                    with contextlib.suppress(redis.ConnectionError):
                        if client.ping():
                            break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not answer PING in 10 s:\n{log.read_text()}")
                    time.sleep(0.05)
            yield url
        finally:
            _stop(proc, signal.SIGTERM)


_VIRTUOSO_INI = Path("/etc/virtuoso-opensource-7/virtuoso.ini")


@dataclass(frozen=True, slots=True)
class Virtuoso:
    """A running test Virtuoso: its SPARQL endpoint (updates allowed) and SQL port."""

    endpoint: str
    sql_port: int
    folder: Path
    pid: int

    def update(self, text: str) -> None:
        """Run a SPARQL 1.1 Update over HTTP; ``RuntimeError`` with Virtuoso's message if refused.

        Virtuoso refuses blank nodes in ``INSERT DATA`` (error SP031, against SPARQL 1.1
        Update §3.1.1): write ``INSERT { ... } WHERE {}`` for data with blank nodes."""
        answer = httpx.post(self.endpoint, data={"update": text}, timeout=30)
        if answer.status_code != 200:
            raise RuntimeError(f"Virtuoso refused the update ({answer.status_code}): {answer.text[:500]}")

    def isql(self, statement: str) -> str:
        """Run one SQL statement as ``dba`` with ``isql-vt`` (same package); its output."""
        argv = ["isql-vt", f"127.0.0.1:{self.sql_port}", "dba", "dba", f"exec={statement}"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if done.returncode != 0 or "*** Error" in done.stdout + done.stderr:
            raise RuntimeError(f"isql-vt {statement!r} failed:\n{done.stdout}{done.stderr}")
        return done.stdout


def _virtuoso_ini(
    folder: Path, sql_port: int, http_port: int, extra: Mapping[str, Mapping[str, str]]
) -> Path:
    """The package's virtuoso.ini with every file in ``folder`` and both ports on loopback.

    ``[Database]`` and ``[TempDatabase]`` must name different files ("file is already
    open" otherwise); ``ServerPort`` is the SQL port in ``[Parameters]`` and the HTTP
    (SPARQL) port in ``[HTTPServer]``. ``extra`` sets more keys, by section."""
    files = {
        "Database": {
            "DatabaseFile": "virtuoso.db",
            "ErrorLogFile": "virtuoso.log",
            "LockFile": "virtuoso.lck",
            "TransactionFile": "virtuoso.trx",
            "xa_persistent_file": "virtuoso.pxa",
        },
        "TempDatabase": {"DatabaseFile": "virtuoso-temp.db", "TransactionFile": "virtuoso-temp.trx"},
    }
    wanted: dict[str, dict[str, str]] = {
        s: {k: str(folder / f) for k, f in keys.items()} for s, keys in files.items()
    }
    wanted.setdefault("Parameters", {})["ServerPort"] = f"127.0.0.1:{sql_port}"
    wanted.setdefault("HTTPServer", {})["ServerPort"] = f"127.0.0.1:{http_port}"
    for section, keys in extra.items():
        wanted.setdefault(section, {}).update(keys)
    lines, section, done = [], "", set()
    for line in _VIRTUOSO_INI.read_text().splitlines():
        header = re.fullmatch(r"\s*\[(.+)\]\s*", line)
        if header:
            lines += [f"{k} = {v}" for k, v in wanted.get(section, {}).items() if (section, k) not in done]
            done |= {(section, k) for k in wanted.get(section, {})}
            section = header.group(1)
        key = re.match(r"\s*(\w+)\s*=", line)
        if key and key.group(1) in wanted.get(section, {}):
            if (section, key.group(1)) in done:
                continue  # the package's file repeats some keys
            line = f"{key.group(1)} = {wanted[section][key.group(1)]}"
            done.add((section, key.group(1)))
        lines.append(line)
    lines += [f"{k} = {v}" for k, v in wanted.get(section, {}).items() if (section, k) not in done]
    ini = folder / "virtuoso.ini"
    ini.write_text("\n".join(lines) + "\n")
    return ini


@contextlib.contextmanager
def virtuoso_server(extra: Mapping[str, Mapping[str, str]] | None = None) -> Iterator[Virtuoso]:
    """A private Virtuoso on free loopback ports, in the foreground; stopped by its PID.

    Its data lives in a temporary folder (never the package's ``/var/lib``). Ready in
    2-3 s. Virtuoso's ``/sparql`` runs as the SQL user ``SPARQL``, which may read but not
    update (``SR186: No permission to execute procedure DB.DBA.SPARQL_INSERT_DICT_CONTENT``);
    so the fixture runs ``GRANT SPARQL_UPDATE TO "SPARQL"`` with ``isql-vt`` as ``dba``
    (password ``dba`` in a fresh database), which lets tests load and change data with
    plain SPARQL updates. Never do this on a store a node serves in production."""
    binary = shutil.which("virtuoso-t")
    if binary is None or shutil.which("isql-vt") is None:
        what = "virtuoso-t / isql-vt are not installed; .ci/run installs them (apt-get install virtuoso-opensource)"
        if os.environ.get("CI"):
            pytest.fail(what)
        pytest.skip(what)
    sql_port, http_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="virtuoso-") as tmp:
        folder = Path(tmp)
        ini = _virtuoso_ini(folder, sql_port, http_port, extra or {})
        log = folder / "virtuoso.out"
        with log.open("wb") as out:
            argv = [binary, "+foreground", "+configfile", str(ini)]
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=folder)
        try:
            endpoint = f"http://127.0.0.1:{http_port}/sparql"
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"virtuoso-t exited with {proc.returncode}:\n{log.read_text()}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(endpoint, params={"query": "ASK {}"}, timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Virtuoso did not answer {endpoint} in 60 s:\n{log.read_text()}")
                time.sleep(0.1)
            server = Virtuoso(endpoint, sql_port, folder, proc.pid)
            server.isql('GRANT SPARQL_UPDATE TO "SPARQL";')
            yield server
        finally:
            _stop(proc, signal.SIGTERM)


@contextlib.contextmanager
def process(
    argv: Sequence[str],
    url: str,
    ready_path: str = "/health",
    timeout: float = 20,
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` until ``url + ready_path`` answers 200; stop it (SIGINT, then SIGKILL)
    on exit. The child gets the test's environment without ``DSGO_*`` overrides, plus ``env``.
    ``RuntimeError`` with the child's stderr if it exits or does not answer in time."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("DSGO_")}
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env={**environ, **(env or {})})
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{_text(err)}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(url + ready_path, timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    what = f"{' '.join(argv)} did not answer {url}{ready_path} in {timeout:g} s"
                    raise RuntimeError(f"{what}:\n{_text(err)}")
                time.sleep(0.05)
            yield proc
        finally:
            _stop(proc, signal.SIGINT)


def _text(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode(errors="replace")


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True, slots=True)
class Federation:
    """What ``federation`` wrote: the registry's config and URL, one config per node."""

    folder: Path
    registry: Path
    registry_url: str
    nodes: Mapping[str, Path]
    urls: Mapping[str, str]

    def identity(self, party_id: str) -> Identity:
        return load_identity(self.folder / "keys" / party_id)

    def registry_process(self) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
        return process([DSGO, "registry", str(self.registry)], self.registry_url)

    def node_process(
        self, party_id: str, port: int | None = None, env: Mapping[str, str] | None = None
    ) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
        """A worker of ``party_id``'s node, on its configured port or on ``port``."""
        argv = [DSGO, "serve", str(self.nodes[party_id])]
        url = self.urls[party_id]
        if port is not None:
            argv += ["--port", str(port)]
            url = f"http://127.0.0.1:{port}"
        return process(argv, url, env=env)


_READ_ALL = """\
version: 1
rules:
  - id: read-all
    effect: permit
    to: {anyone: true}
    resources: all
    fields: all
"""


def federation(
    folder: Path,
    nodes: Mapping[str, str | None] | None = None,
    clients: Sequence[str] = (CLIENT,),
) -> Federation:
    """A development PKI, a registry (``REGISTRY``) and the nodes' configurations in ``folder``.

    ``nodes`` maps each node's party id to its Redis URL (None: the in-process replay
    cache); default one node, ``NODE``. Nodes and ``clients`` are active registered
    parties; every node serves ``conftest.BUILDING_TTL`` under ``conftest.NS``, all of it
    to any authenticated party (``policies/all.yaml``).
    """
    nodes = {NODE: None} if nodes is None else nodes
    keys = folder / "keys"
    make_ca(keys / "ca")
    parties = [REGISTRY, *nodes, *clients]
    for party in parties:
        make_party(party, keys / party, keys / "ca")
    (folder / "buildings.ttl").write_text(BUILDING_TTL)
    (folder / "policies").mkdir()
    (folder / "policies" / "all.yaml").write_text(_READ_ALL)
    registry_url = f"http://127.0.0.1:{free_port()}"
    registry = [
        "[registry]",
        f'party_id = "{REGISTRY}"',
        f"port = {registry_url.rsplit(':', 1)[1]}",
        f'keys = "keys/{REGISTRY}"',
        'trusted = ["keys/ca/root.cert.pem"]',
    ]
    paths, urls = {}, {}
    for party in parties[1:]:
        registry += ["", "[[party]]", f'id = "{party}"', 'name = "Party"', "start = 2024-01-01"]
        registry += [f'certificates = ["keys/{party}/chain.pem"]']
        if party in nodes:
            port = free_port()
            urls[party] = f"http://127.0.0.1:{port}"
            registry += [f'namespaces = ["{NS}"]', f'endpoint = "{urls[party]}"']
            redis = nodes[party]
            paths[party] = folder / f"node-{party}.toml"
            paths[party].write_text(
                f'[node]\nparty_id = "{party}"\nname = "Node {party}"\nbase_iri = "{NS}"\nport = {port}\n'
                + (f'redis = "{redis}"\n' if redis else "")
                + f'\n[keys]\ndir = "keys/{party}"\n\n[registry]\nurl = "{registry_url}"\n'
                + f'party_id = "{REGISTRY}"\nca = ["keys/ca/root.cert.pem"]\n\n'
                + '[policies]\ndir = "policies"\n\n'
                + '[[source]]\nname = "buildings"\ntype = "rdf"\npath = "buildings.ttl"\n'
            )
    (folder / "registry.toml").write_text("\n".join(registry) + "\n")
    return Federation(folder, folder / "registry.toml", registry_url, paths, urls)


class Relay:
    """A TCP relay from a loopback port to ``target``, which can be cut and restored: a
    store that goes away and comes back, at the same address."""

    def __init__(self, target: int) -> None:
        self.target, self.port = target, free_port()
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def up(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.05)
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def down(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while not self._stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                upstream = socket.create_connection(("127.0.0.1", self.target))
                self._sockets += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def relayed(endpoint: str) -> Iterator[Relay]:
    """A ``Relay`` to the port of ``endpoint``, up until the block ends."""
    port = httpx.URL(endpoint).port
    assert port is not None
    relay = Relay(port)
    relay.up()
    try:
        yield relay
    finally:
        relay.down()
