"""Views without copies (label graphs, ``gateway.views``) equal the materialised views
they replace (``Access.view``, which decides every resource for the grant anew), on
random data spread over sources (a triple in one or two of them), random policies and
callers; and they stay equal as a source changes, a source goes away and the policy
changes, each labelled incrementally. The data and policies are the property test's
(``tests.test_policy_property``): conditions one or two links away, shared and nested
blank nodes, validity periods, rules to parties, roles or anyone.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyoxigraph as ox
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import views
from gateway.access import Access
from gateway.config import load_node_settings
from gateway.labels import graph_of
from gateway.policy.model import Caller, Grant
from gateway.store.local import LABEL_PREFIX, Store
from gateway.vocab import load_vocab
from tests.conftest import serving, write_node
from tests.test_policy_property import (
    EXAMPLES,
    NOW,
    ROLES,
    SUBJECTS,
    Harness,
    Sparql,
    World,
    callers,
    datasets,
    harness,
    lit,
    policy_files,
    reference_view,
    to_ox_triple,
    triples_of,
    union,
    worlds,
)

__all__ = ["harness"]  # the property suite's node, for the SPARQL test

VOCAB = load_vocab()
EVERYTHING = Grant.of((), "everything", everything=True)
_SETTINGS = settings(
    max_examples=2 * EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_FILES = itertools.count()


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("views") / "policies"


def write_policies(folder: Path, files: list[list[dict[str, object]]]) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    n = next(_FILES)
    for i, rules in enumerate(files):
        (folder / f"p{n}-{i}.yaml").write_text(yaml.safe_dump({"rules": rules}, sort_keys=False))


def spread(data: frozenset[tuple[tuple[str, ...], ...]], places: list[int]) -> list[list[ox.Triple]]:
    """The triples over three sources: each in one of them, or (place 3) in the first two."""
    sources: list[list[ox.Triple]] = [[], [], []]
    for triple, place in zip(sorted(data), itertools.cycle(places or [0]), strict=False):
        for k in (0, 1) if place == 3 else (place,):
            sources[k].append(to_ox_triple(triple))
    return sources


def assert_views_equal(access: Access, grants: list[Grant]) -> None:
    """Each grant's label graphs hold its materialised view, each triple once, and count it."""
    store = access.store
    for grant in grants:
        labelled = access.labelled(grant)
        assert labelled is not None
        expected = triples_of(access.view(grant))
        answer = store.query("CONSTRUCT WHERE { ?s ?p ?o }", labelled.graphs)
        assert isinstance(answer, ox.QueryTriples)
        got = list(answer)
        assert triples_of(got) == expected
        assert len(got) == len(expected)  # the union holds no triple twice
        assert access.triple_count(grant) == len(expected)
        classes = Counter(o[1] for _, p, o in expected if p[1] == RDF and o[0] == "iri")
        assert access.class_counts(grant, "")[0] == dict(classes)


RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"


def assert_counts_true(store: Store) -> None:
    """What the store says each label graph holds is what it holds."""
    labels = store.labels()
    named = {
        g
        for g in store._ox.named_graphs()
        if isinstance(g, ox.NamedNode) and g.value.startswith(LABEL_PREFIX)
    }
    assert set(labels.graphs) <= named
    for graph, held in labels.graphs.items():
        quads = list(store._ox.quads_for_pattern(None, None, None, graph))
        assert len(quads) == held.triples, graph
        classes = Counter(
            q.object.value for q in quads if q.predicate.value == RDF and isinstance(q.object, ox.NamedNode)
        )
        assert dict(classes) == dict(held.classes)
        assert graph == graph_of(held.means)
    for graph in named - set(labels.graphs):
        assert not list(store._ox.quads_for_pattern(None, None, None, graph))


def grants_of(access: Access, people: list[Caller]) -> list[Grant]:
    everyone = [*people, Caller(None, frozenset(ROLES))]
    return [*(access.grant(c) for c in everyone), EVERYTHING]


@_SETTINGS
@given(
    world=worlds,
    places=st.lists(st.integers(0, 3), min_size=1, max_size=8),
    changed=datasets(),
    which=st.integers(0, len(SUBJECTS) - 1),
    later=policy_files(),
    more=st.lists(callers, min_size=1, max_size=2),
)
def test_label_graphs_equal_materialised_views_through_changes(
    policies: Path,
    world: World,
    places: list[int],
    changed: frozenset[tuple[tuple[str, ...], ...]],
    which: int,
    later: list[list[dict[str, object]]],
    more: list[Caller],
) -> None:
    write_policies(policies, world.files)
    store = Store(None)
    access = Access(store, VOCAB, policies, open_node=False, clock=NOW.timestamp)
    for i, triples in enumerate(spread(world.data, places)):
        store.replace_source(f"s{i}", triples, "1")
    access.sync_labels()
    assert_views_equal(access, grants_of(access, world.callers))

    sources = spread(world.data, places)
    subject = ox.NamedNode(SUBJECTS[which])  # one resource's values change: others may read them
    links = {"https://w3id.org/bot#hasStorey", "https://w3id.org/bot#hasSpace"}  # kept: values change
    kept = [t for t in sources[which % 3] if t.subject != subject or t.predicate.value in links]
    new = [t for t in spread(changed, [0])[0] if t.subject == subject and t.predicate.value not in links]
    store.replace_source(f"s{which % 3}", kept + new, "2")  # relabelled as it changes
    assert_views_equal(access, grants_of(access, world.callers))
    store.remove_source(f"s{(which + 1) % 3}")
    assert_views_equal(access, grants_of(access, world.callers))

    write_policies(policies, later)
    access.refresh()  # relabels what the new rules can select
    assert_views_equal(access, grants_of(access, [*world.callers, *more]))
    assert_counts_true(store)


def test_labels_kept_on_disk_serve_a_restarted_node_without_relabelling(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    write_policies(folder, [[_permit("buildings", "bot:Building", ["rdfs:label"])]])
    data = _buildings(3)
    store = Store(tmp_path / "store")
    access = Access(store, VOCAB, folder, open_node=False, clock=NOW.timestamp)
    store.replace_source("s", data, "1")
    access.sync_labels()
    before = {g: (lg.means, lg.triples) for g, lg in store.labels().graphs.items()}
    store.close()

    reopened = Store(tmp_path / "store")
    assert reopened.labels().state  # still valid: the sources are the ones they reflect
    assert {g: (lg.means, lg.triples) for g, lg in reopened.labels().graphs.items()} == before
    access = Access(reopened, VOCAB, folder, open_node=False, clock=NOW.timestamp)
    assert_views_equal(access, grants_of(access, [Caller("EU.EORI.NL000000003")]))
    reopened.close()


def test_labels_a_crash_left_half_done_are_relabelled_in_full(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    write_policies(folder, [[_permit("buildings", "bot:Building", ["rdfs:label"])]])
    store = Store(tmp_path / "store")
    access = Access(store, VOCAB, folder, open_node=False, clock=NOW.timestamp)
    store.replace_source("s", _buildings(3), "1")
    access.sync_labels()
    store._persist_labels(dict(store.labels().graphs), "", memory=False)  # as relabel() begins
    store.close()

    reopened = Store(tmp_path / "store")
    assert not reopened.labels().state
    access = Access(reopened, VOCAB, folder, open_node=False, clock=NOW.timestamp)
    assert_views_equal(access, grants_of(access, [Caller("EU.EORI.NL000000003")]))
    assert_counts_true(reopened)
    reopened.close()


def test_a_blank_node_a_changed_subject_no_longer_reaches_keeps_the_label_of_one_that_does(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "policies"
    write_policies(folder, [[_permit("buildings", "bot:Building", ["dsgo:floorArea"])]])
    store = Store(None)
    access = Access(store, VOCAB, folder, open_node=False, clock=NOW.timestamp)
    area, value = (
        ox.NamedNode("https://vocab.dsgo.example/def#floorArea"),
        ox.NamedNode("http://qudt.org/schema/qudt/numericValue"),
    )
    shared, other = ox.BlankNode("shared"), ox.BlankNode("other")
    one, two = _buildings(2)[:2], _buildings(2)[2:]
    kept = ox.Triple(two[0].subject, area, shared)
    store.replace_source("a", [*two, kept, ox.Triple(shared, value, ox.Literal("81"))], "1")
    store.replace_source("b", [*one, ox.Triple(one[0].subject, area, shared)], "1")
    access.sync_labels()
    # building 0 now reaches another blank node; building 1 still reaches the shared one
    store.replace_source("b", [*one, ox.Triple(one[0].subject, area, other)], "2")
    assert_views_equal(access, grants_of(access, [Caller("EU.EORI.NL000000003")]))
    assert_counts_true(store)


def test_a_changed_rule_for_a_class_relabels_only_that_class(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    write_policies(folder, [[_permit("buildings", "bot:Building", ["rdfs:label"])]])
    store = Store(None)
    access = Access(store, VOCAB, folder, open_node=False, clock=NOW.timestamp)
    storey = ox.NamedNode("https://data.test.example/id/storey/1")
    store.replace_source("s", [*_buildings(2), ox.Triple(storey, ox.NamedNode(RDF), _bot("Storey"))], "1")
    access.sync_labels()
    relabelled: list[ox.NamedNode] = []
    real = store.relabel

    def spy(chunks, state, clear=False, commit=None):  # type: ignore[no-untyped-def]
        def watched(reader):  # type: ignore[no-untyped-def]
            for chunk in chunks(reader):
                relabelled.extend(q.subject for q in chunk.inserts if isinstance(q.subject, ox.NamedNode))
                yield chunk

        return real(watched, state, clear, commit)

    store.relabel = spy  # type: ignore[method-assign]
    write_policies(
        folder, [[_permit("buildings", "bot:Building", ["rdfs:label"]), _permit("s", "bot:Storey", "all")]]
    )
    assert access.refresh()
    assert set(relabelled) == {storey}
    assert_views_equal(access, grants_of(access, [Caller("EU.EORI.NL000000003")]))


def _bot(name: str) -> ox.NamedNode:
    return ox.NamedNode("https://w3id.org/bot#" + name)


def _buildings(n: int) -> list[ox.Triple]:
    out = []
    for i in range(n):
        b = ox.NamedNode(f"https://data.test.example/id/building/{i}")
        out += [
            ox.Triple(b, ox.NamedNode(RDF), _bot("Building")),
            ox.Triple(b, ox.NamedNode("http://www.w3.org/2000/01/rdf-schema#label"), ox.Literal(f"B{i}")),
        ]
    return out


def _permit(rule_id: str, cls: str, fields: object) -> dict[str, object]:
    return {
        "id": rule_id,
        "effect": "permit",
        "to": {"anyone": True},
        "resources": {"classes": [cls]},
        "fields": fields,
    }


def test_a_changed_value_relabels_the_resources_whose_conditions_read_it_through_links(
    tmp_path: Path,
) -> None:
    """A space's rule reads its building's municipality two links back: a new code in
    another source changes what the space shows, though none of the space's triples changed."""
    via = {"via": ["^bot:hasSpace", "^bot:hasStorey"], "property": "dsgo:municipalityCode", "equals": "0363"}
    rule = {
        "id": "spaces",
        "effect": "permit",
        "to": {"anyone": True},
        "resources": {"classes": ["bot:Space"], "where": [via]},
        "fields": "all",
    }
    write_policies(tmp_path / "policies", [[rule]])
    store = Store(None)
    access = Access(store, VOCAB, tmp_path / "policies", open_node=False, clock=NOW.timestamp)
    b, s, sp = (ox.NamedNode(f"https://data.test.example/id/{p}") for p in ("b", "b/storey", "b/space"))
    links = [
        ox.Triple(b, _bot("hasStorey"), s),
        ox.Triple(s, _bot("hasSpace"), sp),
        ox.Triple(sp, ox.NamedNode(RDF), _bot("Space")),
    ]
    code = ox.NamedNode("https://vocab.dsgo.example/def#municipalityCode")
    store.replace_source("model", links, "1")
    store.replace_source("codes", [ox.Triple(b, code, ox.Literal("0363"))], "1")
    access.sync_labels()
    grant = access.grant(Caller("EU.EORI.NL000000003"))
    assert access.triple_count(grant) == 1

    store.replace_source("codes", [ox.Triple(b, code, ox.Literal("0344"))], "2")
    assert access.triple_count(grant) == 0
    store.replace_source("codes", [ox.Triple(b, code, ox.Literal("0363"))], "3")
    assert access.triple_count(grant) == 1
    assert_views_equal(access, grants_of(access, [Caller("EU.EORI.NL000000003")]))


@contextlib.contextmanager
def _residues_for_all() -> Iterator[None]:
    """Every view read as one label graph and a residue holding all the others."""
    saved = views.DIRECT, views.RESIDUE_SHARE
    views.DIRECT, views.RESIDUE_SHARE = 1, 1.0
    try:
        yield
    finally:
        views.DIRECT, views.RESIDUE_SHARE = saved


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(world=worlds)
def test_sparql_through_a_residue_answers_exactly_the_view(harness: Harness, world: World) -> None:
    harness.load(world)
    with _residues_for_all():
        for caller in world.callers:
            expected = union(reference_view(world, caller))
            q = Sparql(harness, caller)
            assert q.graph("CONSTRUCT WHERE { ?s ?p ?o }") == expected
            assert q.rows("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }") == [
                {"n": lit(str(len(expected)), "integer")}
            ]
    assert harness.store.residues() or all(
        len(harness.node.access.labelled(harness.node.access.grant(c)).graphs) <= 2 for c in world.callers
    )


@pytest.mark.anyio
async def test_sparql_on_a_disk_store_answers_from_a_checkpoint_and_follows_changes(tmp_path: Path) -> None:
    toml = write_node(tmp_path, store="state/store", audit=False)
    async with serving(load_node_settings(toml, {})) as (app, client):
        query = {"query": "SELECT (COUNT(*) AS ?n) WHERE { ?s a <https://w3id.org/bot#Building> }"}
        first = await client.get("/sparql", params=query)
        (tmp_path / "data" / "buildings.ttl").write_text(
            "@prefix bot: <https://w3id.org/bot#> . <https://data.test.example/id/building/9> a bot:Building ."
        )
        app.state.dsgo.node.sources.refresh_all()
        second = await client.get("/sparql", params=query)
    assert first.status_code == 200, first.text
    assert first.json()["results"]["bindings"][0]["n"]["value"] == "3"
    assert second.json()["results"]["bindings"][0]["n"]["value"] == "1"
    assert not (tmp_path / "state" / "store.sparql").exists()  # the checkpoints go with the node


@pytest.mark.anyio
async def test_a_change_on_disk_has_its_snapshot_made_before_the_next_query(tmp_path: Path) -> None:
    """The thread that relabels a change also makes the workers' snapshot: the next query
    finds it ready, made of the new labels."""
    toml = write_node(tmp_path, store="state/store", audit=False)
    async with serving(load_node_settings(toml, {})) as (app, client):
        query = {"query": "SELECT (COUNT(*) AS ?n) WHERE { ?s a <https://w3id.org/bot#Building> }"}
        assert (await client.get("/sparql", params=query)).status_code == 200
        pool, store = app.state.dsgo.queries, app.state.dsgo.node.store
        before = pool._snapshot
        (tmp_path / "data" / "buildings.ttl").write_text(
            "@prefix bot: <https://w3id.org/bot#> . <https://data.test.example/id/building/9> a bot:Building ."
        )
        app.state.dsgo.node.sources.refresh_all()
        published = pool._snapshot
        second = await client.get("/sparql", params=query)
    assert published is not before and published.labels is store.labels()
    assert second.json()["results"]["bindings"][0]["n"]["value"] == "1"


def assert_residues_hold_their_graphs(store: Store) -> None:
    """Each residue holds exactly the union of the label graphs it was made of."""
    for residue, graphs in store._residues.items():
        held = triples_of(q.triple for q in store._ox.quads_for_pattern(None, None, None, residue))
        union_of = triples_of(
            q.triple for g in graphs for q in store._ox.quads_for_pattern(None, None, None, g)
        )
        assert held == union_of, residue


def assert_labels_give_reference_views(access: Access, world: World) -> None:
    """Each caller's label graphs hold exactly the reference view of ``world``."""
    for caller in world.callers:
        labelled = access.labelled(access.grant(caller))
        assert labelled is not None
        answer = access.store.query("CONSTRUCT WHERE { ?s ?p ?o }", labelled.graphs)
        assert triples_of(answer) == union(reference_view(world, caller))


@settings(_SETTINGS, max_examples=max(1, EXAMPLES // 2))  # a store on disk per example
@given(
    world=worlds,
    places=st.lists(st.integers(0, 3), min_size=1, max_size=8),
    changed=datasets(),
    which=st.integers(0, len(SUBJECTS) - 1),
)
def test_labels_made_from_nothing_on_disk_and_residues_follow_changes(
    tmp_path_factory: pytest.TempPathFactory,
    policies: Path,
    world: World,
    places: list[int],
    changed: frozenset[tuple[tuple[str, ...], ...]],
    which: int,
) -> None:
    """On disk the first labelling reads the sources in one pass each (not per subject);
    residues made then stay equal to their label graphs' union as a source changes."""
    write_policies(policies, world.files)
    store = Store(tmp_path_factory.mktemp("disk") / "store")
    try:
        access = Access(store, VOCAB, policies, open_node=False, clock=NOW.timestamp)
        for i, triples in enumerate(spread(world.data, places)):
            store.replace_source(f"s{i}", triples, "1", serving=False)
        access.sync_labels()
        assert_labels_give_reference_views(access, world)
        assert_views_equal(access, grants_of(access, world.callers))
        with _residues_for_all():
            for grant in grants_of(access, world.callers):
                view = access.labelled(grant)
                assert view is not None
                small = view.plan()[1]
                if small:
                    store.residue(view.residue(small), small)
        assert_residues_hold_their_graphs(store)

        subject = ox.NamedNode(SUBJECTS[which])
        sources = spread(world.data, places)
        kept = [t for t in sources[which % 3] if t.subject != subject]
        new = [t for t in spread(changed, [0])[0] if t.subject == subject]
        store.replace_source(f"s{which % 3}", kept + new, "2")
        assert_residues_hold_their_graphs(store)
        assert_labels_give_reference_views(
            access, World(triples_of(store.quads()), world.files, world.callers)
        )
        assert_counts_true(store)
    finally:
        store.close()
