"""The federation with real processes: a registry and three nodes as `dsgo` processes on
loopback ports, asked through the `dsgo query` command a user would type."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from gateway.identity.pki import make_ca, make_party
from tests.conftest import free_port
from tests.kit import CORP, FIRM, MUNI, REGISTRY, namespace
from tests.servers import DSGO, process
from tests.test_federation import (
    CORP_DATA,
    CORP_POLICY,
    FIRM_DATA,
    FIRM_POLICY,
    MUNI_DATA,
    MUNI_POLICY,
    QUESTION,
    START,
)

pytestmark = pytest.mark.integration


def write_federation(folder: Path) -> tuple[Path, dict[str, Path], dict[str, str], str]:
    keys = folder / "keys"
    make_ca(keys / "ca")
    for party in (REGISTRY, FIRM, CORP, MUNI):
        make_party(party, keys / party, keys / "ca")
    ports = {party: free_port() for party in (REGISTRY, FIRM, CORP, MUNI)}
    urls = {party: f"http://127.0.0.1:{port}" for party, port in ports.items()}
    registry = [f'[registry]\nparty_id = "{REGISTRY}"\nport = {ports[REGISTRY]}\nkeys = "keys/{REGISTRY}"']
    registry.append('trusted = ["keys/ca/root.cert.pem"]\n')
    configs = {}
    for party, data, policy in (
        (FIRM, FIRM_DATA, FIRM_POLICY),
        (CORP, CORP_DATA, CORP_POLICY),
        (MUNI, MUNI_DATA, MUNI_POLICY),
    ):
        registry.append(
            f'[[party]]\nid = "{party}"\nname = "Party {party[-3:]}"\ncertificates = ["keys/{party}/chain.pem"]\n'
            f'namespaces = ["{namespace(party)}"]\nendpoint = "{urls[party]}"\n'
        )
        home = folder / party
        (home / "policies").mkdir(parents=True)
        (home / "policies" / "policy.yaml").write_text(policy)
        (home / "data.ttl").write_text(data)
        configs[party] = home / "node.toml"
        configs[party].write_text(
            f'[node]\nparty_id = "{party}"\nname = "Node {party[-3:]}"\nbase_iri = "{namespace(party)}"\n'
            f'port = {ports[party]}\n\n[keys]\ndir = "../keys/{party}"\n\n'
            f'[registry]\nurl = "{urls[REGISTRY]}"\nparty_id = "{REGISTRY}"\nca = ["../keys/ca/root.cert.pem"]\n\n'
            '[policies]\ndir = "policies"\n\n[[source]]\nname = "data"\ntype = "rdf"\npath = "data.ttl"\n'
        )
    (folder / "registry.toml").write_text("\n".join(registry))
    return folder / "registry.toml", configs, urls, urls[REGISTRY]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[dict[str, Path], dict[str, str], ExitStack]]:
    registry, configs, urls, registry_url = write_federation(tmp_path)
    with ExitStack() as stack:
        stack.enter_context(process([DSGO, "registry", str(registry)], registry_url))
        for party in (FIRM, CORP, MUNI):
            stack.enter_context(process([DSGO, "serve", str(configs[party])], urls[party]))
        yield configs, urls, stack


def query(config: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    (tmp / "q.rq").write_text(QUESTION)
    argv = [sys.executable, "-m", "gateway.cli", "query", "--as", str(config), f"@{tmp / 'q.rq'}"]
    for iri in START:
        argv += ["--start", iri]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_dsgo_query_answers_across_real_nodes(
    running: tuple[dict[str, Path], dict[str, str], ExitStack], tmp_path: Path
) -> None:
    configs, _, _ = running
    done = query(configs[MUNI], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["home", "label", "rcRoof", "rcFacade", "size", "cost"]
    assert lines[2].split() == [f"{namespace(CORP)}id/home/1", "F", "1.5", "1.1"]
    assert lines[3].split() == [f"{namespace(CORP)}id/home/2", "E", "2.5", "1.2"]
    assert "(2 rows)" in done.stdout
    assert "Answer complete" in done.stdout
    assert f"{FIRM} (http://127.0.0.1:" in done.stdout and "fields withheld by its policy" in done.stdout
    assert "documents from" in done.stderr  # progress was shown


def test_a_stopped_node_gives_an_incomplete_answer_that_says_so(tmp_path: Path) -> None:
    registry, configs, urls, registry_url = write_federation(tmp_path)
    with (
        process([DSGO, "registry", str(registry)], registry_url),
        process([DSGO, "serve", str(configs[CORP])], urls[CORP]),
        process([DSGO, "serve", str(configs[MUNI])], urls[MUNI]),
    ):
        done = query(configs[MUNI], tmp_path)  # the firm's node never started
    assert done.returncode == 1, done.stderr  # an incomplete answer (0 only with --allow-partial)
    assert "INCOMPLETE: some sources are missing" in done.stdout
    assert "(2 rows)" in done.stdout  # labels from the corporation, no insulation values
    assert "failed" in done.stdout and ("down" in done.stdout or "no token" in done.stdout)
