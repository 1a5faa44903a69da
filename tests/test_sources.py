"""Sources: parse errors with file and line, last good version kept, changes picked up,
remote JSON-LD contexts refused, on-disk store served at once after a restart."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from pathlib import Path

import pyoxigraph as ox
import pytest

from connectors import SourceEnv
from connectors.rdf_file import RdfFile
from gateway.config import load_node_settings
from gateway.errors import RemoteContextError, SourceError
from gateway.store.local import Store
from gateway.vocab import CONTEXT_IRI, load_vocab
from tests.conftest import BUILDING_TTL, NS, serving, write_node

ENV = SourceEnv(base_iri=NS, contexts=load_vocab().contexts)


def rdf(path: Path, fmt: str | None = None) -> RdfFile:
    return RdfFile.make(path, {"format": fmt} if fmt else {}, ENV)


def bump(path: Path, text: str) -> None:
    """Write and make sure the fingerprint changes even within one clock tick."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("a.ttl", f"<{NS}a> <{NS}p> 1 .\n<{NS}b> <{NS}p> 2 ."),
        ("a.nt", f"<{NS}a> <{NS}p> <{NS}b> .\n"),
        ("a.nq", f'<{NS}a> <{NS}p> "x" <urn:g> .\n<{NS}a> <{NS}q> "y" .\n'),
        ("a.trig", f'<urn:g> {{ <{NS}a> <{NS}p> "x" }} <{NS}b> <{NS}p> "y" .'),
        ("a.jsonld", json.dumps({"@context": CONTEXT_IRI, "@id": NS + "a", "dsgo:rcRoof": 2.5})),
    ],
)
def test_each_rdf_syntax_loads(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    triples = rdf(path).load()
    assert triples and all(t.subject.value.startswith(NS) for t in triples)


def test_relative_iris_resolve_against_the_namespace(tmp_path: Path) -> None:
    path = tmp_path / "a.ttl"
    path.write_text('<id/building/7> <http://www.w3.org/2000/01/rdf-schema#label> "x" .')
    assert rdf(path).load()[0].subject == ox.NamedNode(NS + "id/building/7")


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("bad.ttl", f'<{NS}a> <{NS}p> "ok" .\n<{NS}a> <{NS}p> "unterminated .\n', 2),
        ("bad.nt", f"<{NS}a> <{NS}p> <{NS}b> .\n\n<{NS}a> <{NS}p> .\n", 3),
        ("bad.jsonld", '{\n  "@id": "x",\n  "p": \n}', 4),
    ],
)
def test_parse_error_names_file_and_line(tmp_path: Path, name: str, text: str, line: int) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SourceError) as err:
        rdf(path).load()
    assert err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_unknown_extension_needs_a_format(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="unknown RDF format"):
        rdf(tmp_path / "data.xyz")
    path = tmp_path / "data.xyz"
    path.write_text(f"<{NS}a> <{NS}p> <{NS}b> .")
    assert len(rdf(path, "ntriples").load()) == 1


class _Listener:
    """A loopback server that records whether anybody connected."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.calls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.calls += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.mark.parametrize("where", ["top", "nested", "import", "array"])
def test_remote_jsonld_context_is_refused_and_never_fetched(tmp_path: Path, where: str) -> None:
    listener = _Listener()
    try:
        remote = f"http://127.0.0.1:{listener.port}/context.jsonld"
        doc: dict[str, object] = {"@id": NS + "a", "dsgo:x": "1"}
        if where == "top":
            doc["@context"] = remote
        elif where == "nested":
            doc = {"@context": CONTEXT_IRI, "@id": NS + "a", "dsgo:y": {"@context": remote, "x": 1}}
        elif where == "import":
            doc["@context"] = {"@import": remote}
        else:
            doc["@context"] = [CONTEXT_IRI, remote]
        path = tmp_path / "remote.jsonld"
        path.write_text(json.dumps(doc))
        with pytest.raises(RemoteContextError) as err:
            rdf(path).load()
        assert remote in str(err.value) and "never fetched" in str(err.value)
        assert err.value.code == "remote_context_refused"
    finally:
        listener.close()
    assert listener.calls == 0


pytestmark = pytest.mark.filterwarnings("error")


@pytest.mark.anyio
async def test_broken_source_keeps_last_good_version_and_is_reported(tmp_path: Path) -> None:
    settings = load_node_settings(write_node(tmp_path), {})
    data = tmp_path / "data" / "buildings.ttl"
    async with serving(settings) as (app, client):
        good = await client.get("/id/building/1")
        bump(data, BUILDING_TTL + '\n<id/building/9> <urn:p> "broken .\n')
        assert app.state.dsgo.node.sources.refresh("buildings") is False
        still = await client.get("/id/building/1")
        health = (await client.get("/health")).json()
        assert (await client.get("/id/building/9")).status_code == 404
        # fixing the file restores health and serves the new data
        bump(data, BUILDING_TTL + '\n<id/building/9> <urn:p> "fixed" .\n')
        assert app.state.dsgo.node.sources.refresh("buildings") is True
        fixed = (await client.get("/health")).json()
        new = await client.get("/id/building/9")
    assert still.status_code == 200 and still.content == good.content
    assert health["status"] == "degraded"
    source = health["sources"]["buildings"]
    assert (source["status"], source["state"], source["triples"]) == ("degraded", "failed", 18)
    assert source["error"]["line"] == BUILDING_TTL.count("\n") + 2
    assert str(data) in source["error"]["detail"]
    assert fixed["status"] == "ready" and "error" not in fixed["sources"]["buildings"]
    assert new.status_code == 200


@pytest.mark.anyio
async def test_changed_file_is_picked_up_while_the_node_runs(tmp_path: Path) -> None:
    settings = load_node_settings(write_node(tmp_path), {})
    data = tmp_path / "data" / "buildings.ttl"
    async with serving(settings, watch=True) as (_, client):
        assert (await client.get("/id/building/8")).status_code == 404
        bump(data, BUILDING_TTL + '<id/building/8> <urn:p> "new" .\n')
        for _ in range(100):
            if (await client.get("/id/building/8")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        answer = await client.get("/id/building/8")
    assert answer.status_code == 200 and '"new"' in answer.text


@pytest.mark.anyio
async def test_missing_source_file_is_reported_not_fatal(tmp_path: Path) -> None:
    path = write_node(tmp_path)
    (tmp_path / "data" / "buildings.ttl").unlink()
    async with serving(load_node_settings(path, {})) as (_, client):
        health = (await client.get("/health")).json()
        assert (await client.get("/")).status_code == 200
    assert (health["status"], health["sources"]["buildings"]["status"]) == ("failing", "failing")
    assert "not found" in health["sources"]["buildings"]["error"]["detail"]


@pytest.mark.anyio
async def test_node_restarted_on_its_disk_store_serves_without_rereading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_node_settings(write_node(tmp_path, store="state/store"), {})
    async with serving(settings) as (_, client):
        before = await client.get("/id/building/1", headers={"accept": "application/n-triples"})

    def no_reading(self: RdfFile) -> list[ox.Triple]:
        raise AssertionError("a restarted node re-read an unchanged source")

    monkeypatch.setattr(RdfFile, "load", no_reading)
    async with serving(settings) as (_, client):
        after = await client.get("/id/building/1", headers={"accept": "application/n-triples"})
        health = (await client.get("/health")).json()
    assert after.status_code == 200 and after.content == before.content
    assert health["sources"]["buildings"]["status"] == "ready"


def test_replacing_a_source_is_atomic_and_drops_the_old_graph(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    a = ox.Triple(ox.NamedNode(NS + "a"), ox.NamedNode(NS + "p"), ox.Literal("1"))
    b = ox.Triple(ox.NamedNode(NS + "b"), ox.NamedNode(NS + "p"), ox.Literal("2"))
    first = store.replace_source("s", [a], "f1")
    generation = store.generation
    second = store.replace_source("s", [b], "f2")
    assert store.generation > generation
    assert first.graph != second.graph
    assert store.describe(NS + "a") == [] and store.describe(NS + "b") == [b]
    assert [q.triple for q in store.quads()] == [b]
    store.close()
    reopened = Store(tmp_path / "store")
    assert reopened.sources()["s"].fingerprint == "f2"
    assert reopened.describe(NS + "b") == [b]
    reopened.close()


def test_graphs_left_by_a_crash_are_dropped_at_open(tmp_path: Path) -> None:
    raw = ox.Store(str(tmp_path / "store"))
    raw.add(
        ox.Quad(
            ox.NamedNode(NS + "x"),
            ox.NamedNode(NS + "p"),
            ox.Literal("half"),
            ox.NamedNode("urn:dsgo:source:s:dead"),
        )
    )
    raw.flush()
    del raw
    store = Store(tmp_path / "store")
    assert store.describe(NS + "x") == []
    assert store.sources() == {}
    store.close()


def test_sources_removed_from_the_configuration_are_no_longer_served(tmp_path: Path) -> None:
    from gateway.store.sources import Sources

    store = Store(None)
    store.replace_source(
        "old", [ox.Triple(ox.NamedNode(NS + "a"), ox.NamedNode(NS + "p"), ox.Literal("1"))], "f"
    )
    Sources((), store, ENV)
    assert store.sources() == {} and store.describe(NS + "a") == []


def test_blank_node_labels_are_the_same_on_every_read(tmp_path: Path) -> None:
    path = tmp_path / "a.ttl"
    path.write_text(f'<{NS}a> <{NS}p> [ <{NS}q> [ <{NS}r> 1 ] ], _:named .\n_:named <{NS}s> "x" .')
    first, second = rdf(path).load(), rdf(path).load()
    assert first == second
    assert len({t.subject for t in first if isinstance(t.subject, ox.BlankNode)}) == 3
    other = tmp_path / "b.ttl"
    other.write_text(path.read_text())
    assert {t.subject for t in rdf(other).load()} != {t.subject for t in first}  # unique per file


@pytest.mark.anyio
async def test_a_node_on_its_disk_store_serves_the_stored_version_while_a_changed_source_is_reread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_node_settings(write_node(tmp_path, store="state/store"), {})
    async with serving(settings) as (_, client):
        before = await client.get("/id/building/1", headers={"accept": "application/n-triples"})
    bump(tmp_path / "data" / "buildings.ttl", BUILDING_TTL + '<id/building/1> <urn:p> "new" .\n')
    reading, release = threading.Event(), threading.Event()
    load = RdfFile.load

    def slow_load(self: RdfFile) -> list[ox.Triple]:
        reading.set()
        release.wait(30)  # a long re-read, until the test lets it finish
        return list(load(self))

    monkeypatch.setattr(RdfFile, "load", slow_load)
    async with serving(settings, watch=True) as (_, client):
        assert await asyncio.to_thread(reading.wait, 30)
        during = await client.get("/id/building/1", headers={"accept": "application/n-triples"})
        ready = await client.get("/health/ready")
        release.set()
        for _ in range(600):
            after = await client.get("/id/building/1", headers={"accept": "application/n-triples"})
            if b'"new"' in after.content:
                break
            await asyncio.sleep(0.05)
    assert during.status_code == 200 and during.content == before.content
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert b'"new"' in after.content


@pytest.mark.anyio
@pytest.mark.parametrize("allow", [False, True])
async def test_an_emptied_source_is_an_error_unless_it_allows_empty(tmp_path: Path, allow: bool) -> None:
    sources = '[[source]]\nname = "buildings"\ntype = "rdf"\npath = "data/buildings.ttl"\n'
    if allow:
        sources += "allow_empty = true\n"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "buildings.ttl").write_text(BUILDING_TTL)
    settings = load_node_settings(write_node(tmp_path, sources=sources), {})
    async with serving(settings) as (app, client):
        bump(tmp_path / "data" / "buildings.ttl", "")
        app.state.dsgo.node.sources.refresh("buildings")
        answer = await client.get("/id/building/1")
        health = (await client.get("/health")).json()["sources"]["buildings"]
    if allow:
        assert answer.status_code == 404 and (health["status"], health["triples"]) == ("ready", 0)
        assert "dsgo-failed-sources" not in answer.headers
    else:
        assert answer.status_code == 200 and answer.headers["dsgo-failed-sources"] == "buildings"
        assert (health["status"], health["state"], health["triples"]) == ("degraded", "failed", 18)
        assert "has no triples" in health["error"]["detail"]
