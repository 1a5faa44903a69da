"""Which label graphs a query over a view reads directly and which through its residue
(``View.plan``): a query pays a lookup per graph of its dataset for every pattern, so the
plan reads as few graphs as it can without copying more than a small share of the view
(or of the store) into the residue. That the residue answers exactly the view is
``tests.test_views``' business; here only the split.
"""

from __future__ import annotations

import pyoxigraph as ox
from hypothesis import given
from hypothesis import strategies as st

from gateway.store.local import LABEL_PREFIX, LabelGraph, Labels
from gateway.views import View


def labels_of(sizes: list[int], others: int = 0) -> tuple[Labels, tuple[ox.NamedNode, ...]]:
    """Label graphs of ``sizes`` (the view) beside one graph of ``others`` triples it
    does not see."""
    graphs = {ox.NamedNode(f"{LABEL_PREFIX}{i}"): LabelGraph("[]", n, {}) for i, n in enumerate(sizes)}
    seen = tuple(graphs)
    if others:
        graphs[ox.NamedNode(f"{LABEL_PREFIX}other")] = LabelGraph("[]", others, {})
    return Labels(1, graphs, "state"), seen


def split(sizes: list[int], others: int = 0) -> tuple[list[int], list[int]]:
    labels, seen = labels_of(sizes, others)
    direct, small = View(labels, seen).plan()
    return [labels.graphs[g].triples for g in direct], [labels.graphs[g].triples for g in small]


def test_one_large_label_graph_and_many_small_are_read_as_two_graphs() -> None:
    direct, small = split([700_000, 400, 350, 300, *[50] * 30])
    assert direct == [700_000]
    assert sorted(small, reverse=True) == [400, 350, 300, *[50] * 30]


def test_a_second_large_label_graph_is_read_directly_not_copied() -> None:
    direct, small = split([700_000, 270_000, 400, *[50] * 30])
    assert direct == [700_000, 270_000]
    assert len(small) == 31


def test_a_residue_of_one_graph_is_not_made() -> None:
    """A copy of one label graph saves no lookup."""
    assert split([700_000, 400]) == ([700_000, 400], [])


def test_medium_label_graphs_small_beside_the_store_go_to_the_residue() -> None:
    """Each holds a fifth of the view, but the view is a hundredth of the store."""
    direct, small = split([2_000] * 5, others=1_000_000)
    assert (len(direct), len(small)) == (1, 4)


def test_medium_label_graphs_large_beside_the_store_are_read_directly() -> None:
    direct, small = split([200_000] * 5, others=0)
    assert (len(direct), small) == (5, [])


@given(st.lists(st.integers(1, 1_000_000), min_size=1, max_size=40), st.integers(0, 2_000_000))
def test_the_plan_reads_every_graph_of_the_view_once(sizes: list[int], others: int) -> None:
    labels, seen = labels_of(sizes, others)
    direct, small = View(labels, seen).plan()
    assert sorted(direct + small, key=lambda g: g.value) == sorted(seen, key=lambda g: g.value)
    assert len(small) != 1
    assert all(labels.graphs[d].triples >= labels.graphs[s].triples for d in direct for s in small)


def test_a_residue_is_named_by_the_graphs_it_holds_whichever_view_asks() -> None:
    labels, seen = labels_of([700_000, *[50] * 10])
    small = View(labels, seen).plan()[1]
    again = View(labels_of([700_000, *[50] * 10])[0], tuple(seen)).plan()[1]
    other = View(labels, seen).residue(small[1:])
    assert View(labels, seen).residue(small) == View(labels, seen).residue(tuple(list(again)))
    assert other != View(labels, seen).residue(small)
