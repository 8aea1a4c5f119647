"""The aggregator's pure core on hand-made beacons: exact figures."""

from __future__ import annotations

from qoe.book import OTHER, History, Outcome, QoeBook
from tests.qoe.conftest import beacon


def test_totals_grow_by_increases_only_and_repeats_change_nothing() -> None:
    book = QoeBook(active_s=30)
    assert book.apply(beacon(seq=0, stalls=0, stall_s=0.0, played_s=2.0, startup_s=0.4), 100.0) is Outcome.NEW
    b1 = beacon(seq=1, stalls=1, stall_s=0.5, played_s=6.0, switches=2)
    assert book.apply(b1, 105.0) is Outcome.UPDATED
    assert book.apply(b1, 106.0) is Outcome.STALE  # redelivered
    assert book.apply(beacon(seq=0, stalls=0, played_s=2.0), 107.0) is Outcome.STALE  # late
    book.apply(beacon(seq=3, stalls=2, stall_s=1.5, played_s=10.0, switches=2, final=True), 110.0)
    (key, t), = book.totals.items()
    assert key == ("tiny", "unknown", "bola", "h1")
    assert (t.sessions, t.ended, t.beacons, t.stalls, t.stall_s, t.played_s, t.switches) == \
        (1, 1, 3, 2, 1.5, 10.0, 2)
    assert (t.startup_count, t.startup_sum_s, t.startup_buckets[1]) == (1, 0.4, 1)
    assert book.stale == 2
    assert book.live(110.0) == {}  # ended


def test_rollups_live_figures_and_expiry() -> None:
    book = QoeBook(active_s=10, forget_s=100)
    book.apply(beacon(session_id="a", edge="e1", abr="bola", bitrate_bps=1e6, buffer_s=4.0), 0.0)
    book.apply(beacon(session_id="b", edge="e2", abr="bola", bitrate_bps=3e6, buffer_s=8.0), 5.0)
    book.apply(beacon(session_id="c", edge="e2", abr="bba", bitrate_bps=2e6, protocol="h3"), 5.0)
    by_abr = book.rollup("abr", 6.0)
    assert by_abr["bola"]["active"] == 2 and by_abr["bola"]["bitrate_bps"] == 2_000_000
    assert by_abr["bola"]["buffer_s"] == 6.0 and by_abr["bba"]["sessions"] == 1
    by_edge = book.rollup("edge", 12.0)  # a is silent for 12 s > active_s
    assert by_edge["e1"]["active"] == 0 and by_edge["e1"]["bitrate_bps"] is None
    assert by_edge["e2"]["active"] == 2 and by_edge["e1"]["sessions"] == 1
    assert book.rollup("protocol", 6.0)["h3"]["sessions"] == 1
    book.apply(beacon(session_id="d"), 200.0)
    assert list(book.sessions) == ["d"]  # a, b, c forgotten; their totals stay
    assert sum(t.sessions for t in book.totals.values()) == 4


def test_groups_are_bounded() -> None:
    book = QoeBook(max_groups=2)
    for i in range(5):
        book.apply(beacon(session_id=f"s{i}", title=f"t{i}"), 0.0)
    assert set(book.totals) == {("t0", "unknown", "bola", "h1"), ("t1", "unknown", "bola", "h1"),
                                (OTHER,) * 4}
    assert book.totals[(OTHER,) * 4].sessions == 3


def test_history_rebuffer_ratio_per_interval() -> None:
    book, hist = QoeBook(), History(points=3)
    book.apply(beacon(seq=0, stall_s=0.0, played_s=4.0), 0.0)
    hist.sample(book, 0.0)
    book.apply(beacon(seq=1, stall_s=1.0, played_s=7.0), 2.0)
    hist.sample(book, 2.0)
    book.apply(beacon(session_id="new", title="other", seq=0, played_s=1.0), 3.0)
    hist.sample(book, 4.0)
    hist.sample(book, 6.0)
    d = hist.to_dict()
    assert d["t"] == [2.0, 4.0, 6.0]
    assert d["by"]["title"]["tiny"]["rebuffer_ratio"] == [0.25, None, None]  # 1 s of 4 watched
    assert d["by"]["title"]["other"]["active"] == [None, 1, 1]
