"""The proof that the simulator is right: Pensieve's published baselines on FCC (data README)."""

from __future__ import annotations

import pytest

from player_sim import model
from player_sim.sim import run_sessions
from player_sim.sweep import run_sweep
from player_sim.traces import load_traces
from player_sim.video import load_video


@pytest.fixture(scope="module")
def fcc(request):
    shared = request.getfixturevalue("shared_data")
    return load_video(str(shared / "videos" / "envivio")), load_traces([shared / "traces" / "fcc"])


def mean(results) -> float:
    return sum(r.score for r in results) / len(results)


def test_bb_matches_pensieve_on_all_290_fcc_traces(fcc):
    video, traces = fcc
    assert len(traces) == 290
    score = mean(run_sessions(video, traces, "bb", model.pensieve()))
    assert score == pytest.approx(36.34, rel=0.005)


def test_robustmpc_matches_pensieve_on_every_third_fcc_trace(fcc):
    video, traces = fcc
    subset = traces[::3]  # sorted() file names, every 3rd from the first
    assert len(subset) == 97
    score = mean(run_sessions(video, subset, "robustmpc", model.pensieve()))
    assert score == pytest.approx(48.69, rel=0.01)
    # the chunk-index quirk is part of the baseline: fixing it scores higher
    assert mean(run_sessions(video, subset, "robustmpc-fixed", model.pensieve())) > score


def test_sweep_with_jobs_gives_the_same_figures(fcc):
    video, traces = fcc
    subset = traces[:60]
    m = model.pensieve()
    sequential = [r.score for r in run_sessions(video, subset, "robustmpc", m)]
    one = run_sweep(video, subset, ["robustmpc", "bb"], m, jobs=1)
    two = run_sweep(video, subset, ["robustmpc", "bb"], m, jobs=2)
    assert [r.score for r in one["robustmpc"]] == sequential  # exactly the reference sweep
    assert [r.score for r in two["bb"]] == [r.score for r in one["bb"]]
    # split sweeps replay 3 sessions before each block for robustMPC's carried errors
    assert mean(two["robustmpc"]) == pytest.approx(mean(one["robustmpc"]), rel=1e-3)


def better_by(a: float, b: float, share: float) -> bool:
    """``a`` beats ``b`` by ``share`` of ``|b|`` (scores can be negative on HSDPA)."""
    return a >= b + share * abs(b)


@pytest.mark.slow
def test_marathon_goes_beyond_the_literature(request):
    """Issue 5's goal, on every trace (pensieve model, QoE_lin); about a minute of CPU."""
    from player_sim import abr

    shared = request.getfixturevalue("shared_data")
    video = load_video(str(shared / "videos" / "envivio"))
    online = [n for n in abr.names() if abr.is_online(n) and n != "marathon"]
    for folder, published_rmpc in (("fcc", 48.69), ("hsdpa_sabre", None)):
        traces = load_traces([shared / "traces" / folder])
        ours = mean(run_sessions(video, traces, "marathon", model.pensieve()))
        others = {n: mean(run_sessions(video, traces, n, model.pensieve())) for n in online}
        assert better_by(ours, others["robustmpc"], 0.10), (folder, ours, others)
        assert all(better_by(ours, s, 0.05) for s in others.values()), (folder, ours, others)
        if published_rmpc is not None:
            subset = mean(run_sessions(video, traces[::3], "marathon", model.pensieve()))
            assert better_by(subset, published_rmpc, 0.10)
