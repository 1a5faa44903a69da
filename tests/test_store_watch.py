"""Finding the changes other writers make in a remote store (``gateway.store.watch``),
against a real Virtuoso: each poll is triggered directly, time is an injected clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyoxigraph as ox
import pytest

from gateway.config import load_node_settings
from gateway.errors import ConfigError, UpstreamError
from gateway.store.remote import RemoteSources, RemoteStore
from gateway.store.watch import StoreWatch, _chunks
from tests.conftest import write_node
from tests.kit import Clock
from tests.servers import Relay, Virtuoso, relayed, virtuoso_server
from tests.test_virtuoso import sparql_source

pytestmark = pytest.mark.integration

EX = "https://data.test.example/"
P = "https://vocab.dsgo.example/def#"
DATA = f"""\
<{EX}home/1> <{P}energyLabel> "C" ; <{P}address> [ <{P}street> "Zaaiersweg" ; <{P}number> 12 ] .
<{EX}home/2> <{P}energyLabel> "B" ;
    <{P}meter> [ <{P}reading> [ <{P}unit> [ <{P}value> 7 ] ] ] .
"""

Told = tuple[str, list[ox.Triple], list[ox.Triple], tuple[str, str]]


@pytest.fixture(scope="module")
def virtuoso() -> Iterator[Virtuoso]:
    with virtuoso_server() as server:
        yield server


@pytest.fixture
def graph(virtuoso: Virtuoso) -> str:
    name = f"urn:dsgo:test:{uuid.uuid4().hex}"
    virtuoso.update(f"INSERT {{ GRAPH <{name}> {{ {DATA} }} }} WHERE {{}}")
    return name


class Watched:
    """A watch on one graph with the changes it told, and the clock it runs by."""

    def __init__(self, endpoint: str, graph: str, folder: Path) -> None:
        self.clock = Clock()
        self.store = RemoteStore(endpoint, graph)
        self.watch = StoreWatch(self.store, "warehouse", folder / "seen.sqlite", 30, self.clock)
        self.told: list[Told] = []
        self.watch.watchers.append(lambda *args: self.told.append(args))

    def subjects(self) -> list[set[str]]:
        return [
            {t.subject.value for t in (*before, *after) if isinstance(t.subject, ox.NamedNode)}
            for _, before, after, _ in self.told
        ]


@pytest.fixture
def watched(virtuoso: Virtuoso, graph: str, tmp_path: Path) -> Iterator[Watched]:
    w = Watched(virtuoso.endpoint, graph, tmp_path)
    yield w
    w.store.close()


def values(triples: Sequence[ox.Triple], predicate: str) -> list[str]:
    return sorted(
        t.object.value
        for t in triples
        if t.predicate.value == P + predicate and isinstance(t.object, ox.Literal)
    )


def test_the_first_poll_records_what_is_there_and_tells_nobody(watched: Watched) -> None:
    assert watched.watch.poll() == 0
    assert watched.told == []
    digests, owners, blanky = watched.watch.seen.digests()
    assert {k for k in digests if not k.startswith("_:")} == {EX + "home/1", EX + "home/2"}
    assert len(owners) == 4 and set(owners.values()) == {EX + "home/1", EX + "home/2"}  # every blank node
    assert blanky == {EX + "home/1", EX + "home/2"}


def test_a_change_by_another_writer_is_told_once_with_the_old_and_new_description(
    virtuoso: Virtuoso, graph: str, watched: Watched
) -> None:
    watched.watch.poll()
    virtuoso.update(
        f'WITH <{graph}> DELETE {{ ?s <{P}energyLabel> "C" }} INSERT {{ ?s <{P}energyLabel> "A" }} WHERE {{ ?s <{P}energyLabel> "C" }}'
    )
    assert watched.watch.poll() == 1
    assert watched.watch.poll() == 0  # nothing new: nothing told again
    [(name, before, after, versions)] = watched.told
    assert name == "warehouse" and versions[0] != versions[1]
    assert (values(before, "energyLabel"), values(after, "energyLabel")) == (["C"], ["A"])
    assert values(after, "street") == ["Zaaiersweg"]  # the whole description, blank nodes too


def test_an_unchanged_store_is_checked_with_one_query(
    watched: Watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched.watch.poll()
    monkeypatch.setattr(watched.store, "subject_digests", lambda: pytest.fail("read per subject"))
    assert watched.watch.poll() == 0


def test_a_value_changed_in_a_blank_node_is_found(virtuoso: Virtuoso, graph: str, watched: Watched) -> None:
    watched.watch.poll()
    virtuoso.update(
        f"WITH <{graph}> DELETE {{ ?a <{P}number> 12 }} INSERT {{ ?a <{P}number> 14 }} WHERE {{ ?a <{P}number> 12 }}"
    )
    assert watched.watch.poll() == 1
    assert watched.subjects() == [{EX + "home/1"}]
    assert values(watched.told[0][2], "number") == ["14"]


def test_a_change_three_blank_nodes_deep_is_found(virtuoso: Virtuoso, graph: str, watched: Watched) -> None:
    watched.watch.poll()
    virtuoso.update(
        f"WITH <{graph}> DELETE {{ ?u <{P}value> 7 }} INSERT {{ ?u <{P}value> 8 }} WHERE {{ ?u <{P}value> 7 }}"
    )
    assert watched.watch.poll() == 1
    assert watched.subjects() == [{EX + "home/2"}]


def test_a_resource_another_writer_deletes_is_told_with_no_new_description(
    virtuoso: Virtuoso, graph: str, watched: Watched
) -> None:
    watched.watch.poll()
    virtuoso.update(f"WITH <{graph}> DELETE {{ <{EX}home/1> ?p ?o }} WHERE {{ <{EX}home/1> ?p ?o }}")
    assert watched.watch.poll() == 1
    [(_, before, after, _)] = watched.told
    assert values(before, "energyLabel") == ["C"] and after == []
    assert EX + "home/1" not in watched.watch.seen.digests()[0]


def test_a_change_made_while_the_store_was_unreachable_is_told_once_when_it_is_back(
    virtuoso: Virtuoso, graph: str, tmp_path: Path, relay: Relay
) -> None:
    endpoint = f"http://127.0.0.1:{relay.port}/sparql"
    watched = Watched(endpoint, graph, tmp_path)
    watched.watch.poll()
    relay.down()
    virtuoso.update(
        f'WITH <{graph}> DELETE {{ ?s <{P}energyLabel> "B" }} INSERT {{ ?s <{P}energyLabel> "D" }} WHERE {{ ?s <{P}energyLabel> "B" }}'
    )
    with pytest.raises(UpstreamError) as failed:
        watched.watch.poll()
    assert failed.value.code == "upstream_error" and watched.store.failure is not None
    relay.up()
    assert watched.watch.poll() == 1
    assert watched.watch.poll() == 0
    assert watched.subjects() == [{EX + "home/2"}]
    assert watched.store.failure is None
    watched.store.close()


def test_a_watcher_that_fails_leaves_the_change_for_the_next_poll(
    virtuoso: Virtuoso, graph: str, watched: Watched
) -> None:
    watched.watch.poll()
    virtuoso.update(
        f'WITH <{graph}> DELETE {{ ?s <{P}energyLabel> "B" }} INSERT {{ ?s <{P}energyLabel> "E" }} WHERE {{ ?s <{P}energyLabel> "B" }}'
    )

    def broken(*_: object) -> None:
        raise OSError("disk full")

    watched.watch.watchers.insert(0, broken)
    with pytest.raises(OSError, match="disk full"):
        watched.watch.poll()
    watched.watch.watchers.remove(broken)
    assert watched.watch.poll() == 1
    assert [values(after, "energyLabel") for _, _, after, _ in watched.told] == [["E"]]


def test_a_check_is_due_by_the_interval_or_when_the_owner_says_the_store_changed(watched: Watched) -> None:
    assert watched.watch.due()
    watched.watch.poll()
    assert not watched.watch.due()
    watched.clock.now += 29
    assert not watched.watch.due()
    watched.clock.now += 1
    assert watched.watch.due()
    watched.watch.poll()
    watched.watch.changed_now()
    assert watched.watch.due()


@pytest.mark.parametrize("value", ["-1", '"30s"', "true"])
def test_a_watch_that_is_not_seconds_names_the_key(tmp_path: Path, value: str) -> None:
    source = sparql_source("http://127.0.0.1:1/sparql") + f"watch = {value}\n"
    with pytest.raises(ConfigError) as err:
        load_node_settings(write_node(tmp_path, sources=source), {})
    assert err.value.key == "source[0].watch"
    assert "seconds between checks for changes" in err.value.expected


@pytest.fixture
def relay(virtuoso: Virtuoso) -> Iterator[Relay]:
    """The store behind a relay that can be cut and restored (``tests.servers.Relay``)."""
    with relayed(virtuoso.endpoint) as relay:
        yield relay


def test_resources_read_together_are_described_as_each_alone(watched: Watched) -> None:
    iris = [EX + "home/1", EX + "home/2", EX + "home/404", "not an iri"]
    together = watched.store.describe_many(iris)
    assert {iri: sorted(map(str, together[iri])) for iri in iris} == {
        iri: sorted(map(str, watched.store.describe(iri))) for iri in iris
    }
    assert len(together[EX + "home/2"]) == 5  # the meter's three levels of blank nodes


def test_resources_are_read_in_chunks_the_stores_row_limit_allows() -> None:
    now = {f"s{i}": "3000:1:1" for i in range(4)} | {"big": "9000:1:1", "gone": "1:1:1"}
    chunks = _chunks(["s0", "s1", "big", "s2", "s3"], now)
    assert chunks == [["s0"], ["s1"], ["big"], ["s2"], ["s3"]]
    assert _chunks([], now) == [[]]
    assert _chunks([f"s{i}" for i in range(1200)], {}) == [
        [f"s{i}" for i in range(k, min(k + 500, 1200))] for k in range(0, 1200, 500)
    ]


def test_the_probe_at_start_makes_no_check_and_the_next_pass_does(
    virtuoso: Virtuoso, graph: str, tmp_path: Path
) -> None:
    """A check scans the whole graph: a node must not wait for one before it serves."""
    settings = load_node_settings(write_node(tmp_path, sources=sparql_source(virtuoso.endpoint, graph)), {})
    store = RemoteStore(virtuoso.endpoint, graph)
    try:
        sources = RemoteSources(settings.sources[0], store)
        watch = sources.watch_changes(tmp_path / "seen.sqlite", Clock())
        assert watch is not None
        sources.refresh_all(serving=False)  # the node's start
        assert watch.checked_at is None and not store.failure
        sources.refresh_all()  # the watcher's first pass
        assert watch.checked_at is not None
    finally:
        store.close()
