"""The pure playback model, the default model (latency, startup, abandonment) and the CLI."""

from __future__ import annotations

import csv
import json

import pytest

from abrstack.cli import main
from player_sim import model
from player_sim.playback import Playback, PlaybackEnded, PlaybackStarted, StallEnded, StallStarted
from player_sim.sim import run_session
from player_sim.traces import parse_sabre
from player_sim.video import make_video
from tests.player_sim.conftest import constant_trace


def test_playback_events_follow_the_clock():
    p = Playback(startup_threshold_s=4.0)
    assert p.segment_added(1.0, 2.0) == []  # 2 s < threshold: still waiting
    assert p.segment_added(1.5, 2.0) == [PlaybackStarted(1.5)]
    assert p.startup_s == 1.5
    assert p.advance(3.5) == [] and p.buffer_s == pytest.approx(2.0)
    assert p.advance(7.5) == [StallStarted(5.5)]
    assert p.stall_total_s == pytest.approx(2.0)
    events = p.segment_added(9.5, 4.0)
    assert events == [StallEnded(9.5, 4.0)] and p.stall_total_s == pytest.approx(4.0) and p.stalls == 1
    p.segment_added(9.5, 2.0, last=True)
    assert p.advance(100.0) == [PlaybackEnded(15.5)]
    assert p.stall_total_s == pytest.approx(4.0)


def test_default_model_charges_latency_and_startup(tiny_video):
    # sabre trace: 10 Mbps with 100 ms request latency; bb's first choice is level 0
    trace = parse_sabre("s", json.dumps([{"duration_ms": 100_000, "bandwidth_kbps": 10_000, "latency_ms": 100}]))
    r = run_session(tiny_video, trace, "bb", model.default())
    first = r.records[0]
    assert first.level == 0
    assert first.download_s == pytest.approx(0.1 + 0.5e6 / (10e6 / 8 * 0.95))
    assert r.startup_s == pytest.approx(first.download_s)  # 4-s threshold = one segment
    assert r.rebuffer_s == 0
    # the score charges startup like rebuffering (README): 4.3 per second
    assert r.score == pytest.approx(sum(x.reward for x in r.records) - 4.3 * r.startup_s)


def test_default_model_abandons_a_download_that_would_stall():
    # 8 Mbps for 10 s, then 0.2 Mbps: the top level's 4 MB segment started near 10 s stalls
    video = make_video("v", [500_000, 8_000_000], 4.0, [[250_000] * 6, [4_000_000] * 6])
    trace = constant_trace(8, 10, "drop")
    trace = trace.__class__(trace.name, 0.0, trace.durations_s + (1000.0,), trace.bandwidths_bps + (200_000.0,),
                            trace.latencies_s + (0.0,))
    with_abandon = run_session(video, trace, "robustmpc", model.default())
    without = run_session(video, trace, "robustmpc", model.Model(**{**model.default().__dict__, "abandonment": False}))
    assert with_abandon.abandoned >= 1
    assert with_abandon.rebuffer_s < without.rebuffer_s
    assert with_abandon.score > without.score


def test_cli_json_csv_and_plots(tmp_path, capsys):
    code = main(["sim", "--quiet", "--abr", "bb,robustmpc,optimal", "--model", "pensieve", "--json",
                 "--csv", str(tmp_path / "s.csv"), "--out", str(tmp_path / "plots")])
    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads(out)
    assert list(summary) == ["bb", "robustmpc", "optimal"]
    assert set(summary["bb"]) == {"sessions", "qoe_mean", "qoe_per_chunk", "bitrate_kbps_mean",
                                  "rebuffer_s_mean", "startup_s_mean", "switches_mean"}
    assert summary["optimal"]["qoe_mean"] >= summary["robustmpc"]["qoe_mean"]
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert len(rows) == 3 * summary["bb"]["sessions"]
    assert {"algorithm", "trace", "score", "qoe_per_chunk"} <= set(rows[0])
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert "qoe_cdf.png" in pngs and "session_000.png" in pngs
    assert all((tmp_path / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_cli_table_and_abr_list(capsys):
    assert main(["sim", "--quiet", "--abr", "bb"]) == 0
    out = capsys.readouterr().out
    assert "model default" in out and "QoE mean" in out and "\nbb " in out
    assert main(["abr-list"]) == 0
    out = capsys.readouterr().out
    assert "SIGCOMM 2014" in out and "[offline]" in out and "robustmpc-fixed" in out


def test_cli_plots_chosen_traces(tmp_path, capsys):
    from player_sim.cli import DATA_DIR

    name = sorted(p.name for p in (DATA_DIR / "traces" / "hsdpa").iterdir())[1]
    assert main(["sim", "--quiet", "--abr", "bb", "--model", "pensieve", "--trace", str(DATA_DIR / "traces" / "hsdpa"),
                 "--out", str(tmp_path), "--plot-traces", name]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qoe_cdf.png", "session_001.png"]
    capsys.readouterr()
    assert main(["sim", "--quiet", "--abr", "bb", "--out", str(tmp_path), "--plot-traces", "nope"]) == 1
    assert "not in the sweep: nope" in capsys.readouterr().err
