"""Rendezvous hashing with bounded load: shares, minimal movement, the load bound."""

from __future__ import annotations

import collections

import pytest

from steer import hrw

EDGES = ["edge-a", "edge-b", "edge-c", "edge-d"]
TITLES = [f"title-{i:03d}" for i in range(2000)]


def test_each_edge_gets_about_its_share() -> None:
    counts = collections.Counter(hrw.assign(t, EDGES)[0] for t in TITLES)
    assert set(counts) == set(EDGES)
    for n in counts.values():
        assert 400 < n < 600, counts


def test_weights_set_the_share() -> None:
    counts = collections.Counter(hrw.order(t, EDGES, {"edge-a": 3.0})[0] for t in TITLES)
    assert 0.42 < counts["edge-a"] / len(TITLES) < 0.58, counts     # 3 / 6 expected


def test_removing_an_edge_moves_only_its_titles() -> None:
    before = {t: hrw.assign(t, EDGES)[0] for t in TITLES}
    after = {t: hrw.assign(t, [e for e in EDGES if e != "edge-b"])[0] for t in TITLES}
    moved = [t for t in TITLES if before[t] != after[t]]
    assert moved and all(before[t] == "edge-b" for t in moved)
    assert len(moved) / len(TITLES) < 0.30


def test_bounded_load_spreads_a_hot_edge() -> None:
    loads: dict[str, float] = collections.Counter()
    for t in TITLES[:400]:
        node = hrw.assign(t, EDGES, loads, c=1.1)[0]
        loads[node] += 1
    assert max(loads.values()) <= -(-1.1 * 400 // 4) + 1


def test_every_edge_full_still_gives_a_node() -> None:
    loads = {e: 100.0 for e in EDGES}
    assert hrw.assign("x", EDGES, loads, c=1.0, replicas=2)[0] in EDGES
    assert len(hrw.assign("x", EDGES, loads, c=1.0, replicas=2)) == 2


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        hrw.assign("x", EDGES, {}, c=0.5)
    with pytest.raises(ValueError):
        hrw.assign("x", EDGES, replicas=0)
