"""Marathon, our algorithm: its characteristic behaviour on hand-made traces."""

from __future__ import annotations

import numpy as np
import pytest

from player_sim import model
from player_sim.abr.base import AbrContext, Download, PlayerState
from player_sim.abr.marathon import Marathon
from player_sim.sim import run_session
from player_sim.video import make_video
from tests.player_sim.conftest import constant_trace

RATES = [1_000_000, 2_000_000, 3_000_000]


def video(segments: int = 12):
    return make_video("t", RATES, 4.0, [[r * 4 // 8] * segments for r in RATES])


def test_steady_fast_link_goes_to_the_top_and_stays():
    r = run_session(video(), constant_trace(10), "marathon", model.pensieve())
    assert [x.level for x in r.records] == [1] + [2] * 11
    # (3 - 1) for the first switch, then 3 per segment: the offline optimum's score
    assert r.score == pytest.approx(2 + 3 * 10)
    assert r.score == pytest.approx(run_session(video(), constant_trace(10), "optimal", model.pensieve()).score)


def test_builds_a_cushion_and_spends_it_before_the_end():
    # 2.5 Mbps sustains level 1 (2 Mbps) but not level 2: the plan saves buffer and moves
    # up for the last segments, where leftover buffer would be wasted.
    r = run_session(video(), constant_trace(2.5), "marathon", model.pensieve())
    levels = [x.level for x in r.records]
    assert r.rebuffer_s == 0
    assert levels[-1] == 2 and max(levels[:6]) < 2
    assert levels[1:] == sorted(levels[1:])  # only ever up after startup: no oscillation
    assert r.records[-1].buffer_s < max(x.buffer_s for x in r.records)


def test_outage_aware_stall_is_a_buffer_dependent_margin():
    m = Marathon(AbrContext(video(), 60.0, 12))
    p, o = m.config.outage_p, m.config.outage_s
    stall = m._stall(np.array([2.0, 6.0, 2.0]), np.array([4.0, 4.0, 20.0]))
    assert stall == pytest.approx([p * (2 + o - 4), (1 - p) * 2 + p * (6 + o - 4), 0.0])


def test_scenarios_pad_the_young_session_and_add_the_dip():
    m = Marathon(AbrContext(video(), 60.0, 12))
    m.report_download(Download(0, 1, 1_000_000, 1.08, 4.0, latency_s=0.08))  # 1 MB/s transfer
    xs, w = m.scenarios()
    c = m.config
    assert len(xs) == c.pad_to + 1 and w.sum() == pytest.approx(1.0)
    assert xs[-1] == pytest.approx(1.0) and w[-1] == pytest.approx(c.dip_weight)
    assert xs[0] == pytest.approx(c.pad_factor * 1.0)
    assert m.choose(PlayerState(1.0, 1, 4.0, 1)).level in (0, 1, 2)
