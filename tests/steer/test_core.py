"""The steerer's placement and health, on the steerer's own clock (no sockets)."""

from __future__ import annotations

from abrstack.events import health_event
from steer.core import Steerer
from steer.health import HealthView

EDGES = {f"edge-{i}": f"http://127.0.0.1:{9000 + i}" for i in range(4)}
TITLES = [f"title-{i:03d}" for i in range(400)]


def _beat(view: HealthView, edge: str, now: float, active: float = 0.0) -> None:
    assert view.observe(health_event(edge, "0", 1.0, active=active), now)


def test_an_edge_removed_moves_only_its_titles() -> None:
    view = HealthView(list(EDGES), stale_s=3.0)
    st = Steerer(EDGES, view)
    for e in EDGES:
        _beat(view, e, 0.0)
    before = {t: st.priority(t, 0.5)[0] for t in TITLES}
    for e in ("edge-0", "edge-1", "edge-3"):        # edge-2 goes silent
        _beat(view, e, 3.0)
    assert view.up(4.0) == ["edge-0", "edge-1", "edge-3"]
    after = {t: st.priority(t, 4.0)[0] for t in TITLES}
    moved = {t for t in TITLES if before[t] != after[t]}
    assert moved == {t for t in TITLES if before[t] == "edge-2"}
    assert 0.15 < len(moved) / len(TITLES) < 0.35
    # and each of its titles goes to its own second choice: spread, not onto one neighbour
    assert len({after[t] for t in moved}) == 3


def test_silent_edge_is_out_after_stale_s_and_back_when_it_beats() -> None:
    view = HealthView(list(EDGES), stale_s=3.0)
    for e in EDGES:
        _beat(view, e, 10.0)
    assert len(view.up(12.9)) == 4
    _beat(view, "edge-0", 13.0)
    assert view.up(13.1) == ["edge-0"]
    _beat(view, "edge-1", 14.0)
    assert view.up(14.0) == ["edge-0", "edge-1"]


def test_overloaded_edge_gets_less_weight_and_fewer_titles() -> None:
    view = HealthView(list(EDGES), overload=100)
    st = Steerer(EDGES, view)
    for e in EDGES:
        _beat(view, e, 0.0, active=500 if e == "edge-1" else 3)
    assert view.weights(0.5)["edge-1"] == 0.25
    firsts = [st.priority(t, 0.5)[0] for t in TITLES]
    assert firsts.count("edge-1") < 0.12 * len(TITLES)           # a quarter of its share


def test_unknown_or_malformed_heartbeats_are_ignored() -> None:
    from abrstack.bus import Event

    view = HealthView(["edge-a"])
    assert not view.observe(health_event("edge-z", "0", 1.0), 0.0)
    assert not view.observe(Event("edge.health", {"edge": "edge-a", "active": -1}), 0.0)
    assert not view.observe(Event("edge.health", {"edge": "edge-a", "active": "x"}), 0.0)
    assert view.up(0.0) == [] and view.ignored == 3


def test_hot_title_spills_over_the_load_bound() -> None:
    view = HealthView(list(EDGES), static=True)
    st = Steerer(EDGES, view, c=1.25)
    for _ in range(40):
        st.open_session("hot", "hls", 0.0)
    for t in TITLES[:40]:
        st.open_session(t, "hls", 0.0)
    placed = [st.priority(t, 2.0)[0] for t in TITLES[:40]]
    hot = st.priority("hot", 2.0)[0]
    # the hot title's 40 sessions fill its edge to the bound: the others go elsewhere
    assert placed.count(hot) <= 1


def test_random_policy_spreads_one_title_over_every_edge() -> None:
    view = HealthView(list(EDGES), static=True)
    st = Steerer(EDGES, view, policy="random")
    firsts = {st.priority("one-title", 0.0, key=f"session-{i}")[0] for i in range(200)}
    assert firsts == set(EDGES)
