import json
import subprocess
import sys
from pathlib import Path

import pytest

from player_sim import qoe_vmaf
from player_sim.qoe import SegmentRecord
from player_sim.video import load_video


def rec(segment: int, level: int, rebuffer_s: float = 0.0) -> SegmentRecord:
    return SegmentRecord(segment, level, 0.0, rebuffer_s, 0.0, 0.0, 0.0, 0.0)


VMAF = [[60.0, 62.0, 64.0], [90.0, 92.0, 94.0]]


def test_comyco_weights_on_a_hand_worked_session():
    out = qoe_vmaf.vmaf_qoe([rec(0, 0), rec(1, 1, 0.5), rec(2, 0)], VMAF, startup_s=1.0)
    # played 60, 92, 64: one rise of 32, one drop of 28, 0.5 s stall + 1 s startup
    # constants of thu-media/Comyco src/fixed_env.py, typed here independently of the module
    expected = (0.8469011 * 216 - 28.79591348 * 1.5 + 0.29797156 * 32 - 1.06099887 * 28
                - 3 * 2.661618558192494)
    assert out["vmaf_qoe"] == pytest.approx(expected)
    assert out["vmaf_mean"] == pytest.approx(72.0)
    assert out["vmaf_switch_mean"] == pytest.approx(30.0)
    assert (out["rebuffer_s"], out["startup_s"]) == (0.5, 1.0)


def test_higher_quality_without_stalls_scores_higher():
    low = qoe_vmaf.vmaf_qoe([rec(i, 0) for i in range(3)], VMAF, 0.0)["vmaf_qoe"]
    high = qoe_vmaf.vmaf_qoe([rec(i, 1) for i in range(3)], VMAF, 0.0)["vmaf_qoe"]
    assert high > low


def write_title(d: Path, with_vmaf: bool) -> Path:
    d.mkdir()
    renditions = []
    for k, (rid, kbps) in enumerate((("240p", 400), ("360p", 800))):
        segs = [{"uri": f"{rid}/seg-{i:05d}.m4s", "duration_s": 2.0, "size_bytes": kbps * 250,
                 **({"quality": {"vmaf": 70.0 + 20 * k + i}} if with_vmaf else {})} for i in range(10)]
        renditions.append({"id": rid, "kind": "video", "target_bitrate_bps": kbps * 1000,
                           "average_bitrate_bps": kbps * 1000, "segments": segs})
    (d / "title.json").write_text(json.dumps({"format": 1, "title": d.name, "segment_s": 2.0,
                                              "renditions": renditions}))
    return d


def test_title_json_segment_vmaf_is_read(tmp_path: Path):
    video = load_video(str(write_title(tmp_path / "t", True)))
    assert video.vmaf is not None and video.vmaf[1][3] == 93.0
    assert load_video(str(write_title(tmp_path / "u", False))).vmaf is None


def sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "abrstack", "sim", "--quiet", "--abr", "bb,marathon",
                           *args], capture_output=True, text=True, timeout=120)


def test_sim_qoe_vmaf_reports_per_algorithm(tmp_path: Path):
    res = sim("--video", str(write_title(tmp_path / "t", True)), "--qoe", "vmaf", "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert set(summary) == {"bb", "marathon"}
    assert all(70 <= s["vmaf_mean"] <= 99 and "vmaf_qoe" in s and "qoe_mean" in s
               for s in summary.values())


def test_sim_qoe_vmaf_without_segment_vmaf_is_one_sentence(tmp_path: Path):
    res = sim("--video", str(write_title(tmp_path / "u", False)), "--qoe", "vmaf")
    assert res.returncode == 1 and "needs per-segment VMAF" in res.stderr
    assert "Traceback" not in res.stderr
