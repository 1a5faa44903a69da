"""A first start on an on-disk store reads and labels in a process of its own (``gateway.startup``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pyoxigraph as ox
import pytest

from connectors.rdf_file import RdfFile
from gateway import startup
from gateway.config import load_node_settings
from gateway.errors import StartError
from gateway.node import Node
from gateway.store.local import Store
from tests.conftest import BUILDING_TTL, serving, write_node

pytestmark = pytest.mark.filterwarnings("error")

BUILDING = {"accept": "application/n-triples"}
COUNT = {"query": "SELECT (COUNT(*) AS ?n) WHERE { ?s a <https://w3id.org/bot#Building> }"}


def disk_node(tmp_path: Path, **node: object) -> Path:
    return write_node(tmp_path, store="state/store", audit=False, **node)


def held(store: Store) -> dict[str, Any]:
    """What a store serves, without the names its graphs happened to get."""
    labels = store.labels()
    graphs = {g: (lg.means, lg.triples, dict(lg.classes)) for g, lg in labels.graphs.items()}
    return {
        "sources": {n: (s.fingerprint, s.triples) for n, s in store.sources().items()},
        "triples": sorted(str(q.triple) for q in store.quads()),
        "labels": (labels.state, graphs),
        "labelled": sorted(
            str(q) for g in labels.graphs for q in store._ox.quads_for_pattern(None, None, None, g)
        ),
    }


@pytest.mark.anyio
async def test_a_first_start_on_disk_reads_its_sources_in_a_process_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reading(self: RdfFile) -> list[ox.Triple]:
        raise AssertionError("the serving process read a source at its first start")

    monkeypatch.setattr(RdfFile, "load", no_reading)
    async with serving(load_node_settings(disk_node(tmp_path), {})) as (_, client):
        answer = await client.get("/id/building/1", headers=BUILDING)
        health = (await client.get("/health")).json()
    assert answer.status_code == 200 and b"Kerkstraat 1" in answer.content
    assert (health["status"], health["sources"]["buildings"]["triples"]) == ("ready", 18)


@pytest.mark.anyio
async def test_the_store_after_a_first_start_is_the_store_a_restart_opens(tmp_path: Path) -> None:
    settings = load_node_settings(disk_node(tmp_path), {})
    async with serving(settings) as (app, client):
        first = held(app.state.dsgo.node.store)
        answers = [(await client.get(p, params=q)).text for p, q in (("/", {}), ("/sparql", COUNT))]
    async with serving(settings) as (app, client):
        again = held(app.state.dsgo.node.store)
        after = [(await client.get(p, params=q)).text for p, q in (("/", {}), ("/sparql", COUNT))]
    assert first == again and first["labels"][0] and first["labelled"]
    assert answers == after and '"3"' in answers[1]


def _without_times(health: dict[str, Any]) -> dict[str, Any]:
    source = dict(health["sources"]["buildings"])
    source.pop("loaded_at")
    source["error"] = {k: v for k, v in source["error"].items() if k != "at"}
    return source


@pytest.mark.anyio
async def test_a_malformed_source_at_a_first_start_on_disk_is_reported_as_in_memory(tmp_path: Path) -> None:
    reports = []
    for folder, store in ((tmp_path / "disk", "state/store"), (tmp_path / "memory", None)):
        folder.mkdir()
        toml = write_node(folder, store=store) if store else write_node(folder)
        (folder / "data" / "buildings.ttl").write_text(BUILDING_TTL + '\n<id/building/9> <urn:p> "broken .\n')
        async with serving(load_node_settings(toml, {})) as (_, client):
            health = (await client.get("/health")).json()
            assert (await client.get("/id/building/1")).status_code == 404
        reports.append((health["status"], _without_times(health)))
    (status, disk), (_, memory) = reports
    assert status == "failing" and disk["error"]["code"] == "source_invalid"
    assert disk["error"]["line"] == BUILDING_TTL.count("\n") + 2
    assert {**disk, "path": "", "error": {**disk["error"], "detail": ""}} == {
        **memory,
        "path": "",
        "error": {**memory["error"], "detail": ""},
    }


@pytest.mark.parametrize(
    "child",
    ["import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "raise SystemExit(3)", "print('hello')"],
)
def test_a_first_load_that_dies_is_start_failed_and_the_store_serves_on(tmp_path: Path, child: str) -> None:
    node = Node(load_node_settings(disk_node(tmp_path), {}))
    try:
        with pytest.raises(StartError) as failed:
            startup.load_apart(node, [sys.executable, "-c", child])
        assert failed.value.code == "start_failed"
        assert node.store.sources() == {}  # opened again, as it was
        node.sources.refresh_all()
        assert len(node.store.describe("https://data.test.example/id/building/1")) > 3
    finally:
        node.close()


@pytest.mark.anyio
async def test_a_node_whose_first_load_dies_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(startup, "CHILD", (sys.executable, "-c", "raise SystemExit(3)"))
    with pytest.raises(StartError):
        async with serving(load_node_settings(disk_node(tmp_path), {})):
            pass


#: the child as it runs, but its work fails as a full disk would
_DISK_FULL = (
    "import gateway.startup as s\n"
    "def full(job): raise OSError(28, 'No space left on device')\n"
    "s._work = full\n"
    "raise SystemExit(s.main())"
)


def test_an_error_in_the_first_load_is_raised_in_the_node_as_itself(tmp_path: Path) -> None:
    node = Node(load_node_settings(disk_node(tmp_path), {}))
    try:
        with pytest.raises(OSError) as failed:
            startup.load_apart(node, [sys.executable, "-c", _DISK_FULL])
        assert failed.value.errno == 28
        assert node.store.sources() == {}
    finally:
        node.close()


def test_a_store_still_held_in_the_node_fails_the_first_start_with_the_lock_error(tmp_path: Path) -> None:
    """RocksDB lets go of its lock only when nothing holds the store: the child cannot
    open it, nor can the node again; the start fails, loudly."""
    node = Node(load_node_settings(disk_node(tmp_path), {}))
    kept = node.store._ox  # type: ignore[union-attr]  # as a reader left at work would
    try:
        with pytest.raises(OSError, match="lock"):
            startup.load_apart(node)
    finally:
        del kept
        node.close()


def test_a_restart_with_its_sources_stored_and_labelled_has_no_first_load(tmp_path: Path) -> None:
    settings = load_node_settings(disk_node(tmp_path), {})
    node = Node(settings)
    try:
        assert startup.work_to_do(node) == ("buildings",)
        assert startup.load_apart(node)
    finally:
        node.close()
    node = Node(settings)
    try:
        assert startup.work_to_do(node) is None and not startup.load_apart(node)
    finally:
        node.close()


def test_an_in_memory_store_has_no_first_load_apart(tmp_path: Path) -> None:
    node = Node(load_node_settings(write_node(tmp_path), {}))
    try:
        assert startup.work_to_do(node) is None
    finally:
        node.close()


def test_a_store_opened_again_serves_what_another_process_wrote(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    generation, labels = store.generation, store.labels()
    told: list[bool] = []
    store.on_labels.append(lambda: told.append(True))
    with store.apart() as path:
        other = Store(path)
        other.replace_source(
            "s", [ox.Triple(ox.NamedNode("urn:a"), ox.NamedNode("urn:p"), ox.Literal("x"))], "1"
        )
        other.close()
    try:
        assert store.sources()["s"].triples == 1 and len(store.describe("urn:a")) == 1
        assert store.generation > generation and store.labels().version > labels.version
        assert told == [True]  # the SPARQL workers take a new snapshot
    finally:
        store.close()
