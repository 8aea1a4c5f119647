import json
from pathlib import Path

import pytest

from encoder.errors import LadderError
from encoder.pertitle import ProbePoint, choose_rungs, probe_jobs, run_probes, upper_hull
from tests.encoder.conftest import lavfi, run_abr


def pt(height: int, kbps: float, vmaf: float) -> ProbePoint:
    return ProbePoint(height, height * 16 // 9, 0, kbps, vmaf)


POINTS = [
    pt(360, 300, 60), pt(360, 600, 75), pt(360, 1200, 80), pt(360, 2400, 81),
    pt(720, 600, 62), pt(720, 1200, 85), pt(720, 2400, 94), pt(720, 4800, 97),
    pt(720, 900, 50),  # below the hull
]


def test_upper_hull_is_concave_rising_and_switches_resolution():
    hull = upper_hull(POINTS)
    assert [(p.height, p.kbps) for p in hull] == [
        (360, 300), (360, 600), (720, 1200), (720, 2400), (720, 4800)]
    slopes = [(b.vmaf - a.vmaf) / (b.kbps - a.kbps) for a, b in zip(hull, hull[1:], strict=False)]
    assert all(s > 0 for s in slopes)
    assert slopes == sorted(slopes, reverse=True)


def test_rungs_run_from_min_kbps_to_the_target_vmaf():
    rungs = choose_rungs(upper_hull(POINTS), target_vmaf=95, max_rungs=4, min_kbps=400)
    assert rungs[0]["kbps"] == 400 and rungs[0]["height"] == 360
    assert rungs[-1]["kbps"] == 4800 and rungs[-1]["height"] == 720  # first point at VMAF >= 95
    assert len(rungs) == 4
    assert [r["kbps"] for r in rungs] == sorted(r["kbps"] for r in rungs)
    assert all(r["why"] for r in rungs)


def test_an_unreachable_target_stops_at_the_source_limit():
    rungs = choose_rungs(upper_hull(POINTS), target_vmaf=99, max_rungs=6, min_kbps=200)
    assert rungs[-1]["vmaf"] == 97 and "limit" in rungs[-1]["why"]
    assert rungs[0]["kbps"] == 300  # the hull's lowest point is above --min-kbps


def test_probe_jobs_cover_heights_up_to_the_source_and_refuse_short_sources(tmp_path: Path):
    jobs = probe_jobs("s.mp4", "h264", 1280, 720, 60.0, str(tmp_path))
    assert sorted({j.height for j in jobs}) == [144, 240, 360, 540, 720]
    assert all(j.ref_width == 1280 for j in jobs)
    with pytest.raises(LadderError, match="too short"):
        probe_jobs("s.mp4", "h264", 1280, 720, 1.0, str(tmp_path))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pt")
    return lavfi(d / "src.mp4", "testsrc2=size=320x180:rate=30", seconds=4)


def test_real_probes_give_quality_rising_with_bitrate(source: Path, tmp_path: Path):
    jobs = [j for j in probe_jobs(str(source), "h264", 320, 180, 4.0, str(tmp_path))
            if j.height == 180 and j.crf in (23, 38)]
    done: list[int] = []
    good, poor = run_probes(jobs, workers=2, on_done=lambda d, n: done.append(d))
    assert done == [1, 2]
    assert good.crf == 23 and good.kbps > poor.kbps and good.vmaf > poor.vmaf + 3


def test_encode_per_title_records_probes_hull_and_rungs(source: Path, tmp_path: Path):
    res = run_abr("encode", str(source), "--title", "pt", "--media", str(tmp_path),
                  "--ladder", "per-title", "--max-rungs", "3", "--min-kbps", "150",
                  "--progress", "plain")
    assert res.returncode == 0, res.stderr
    assert "probes:" in res.stderr
    doc = json.loads((tmp_path / "pt" / "title.json").read_text())
    rec = doc["per_title"]
    assert len(rec["probes"]) == 12 and len(rec["hull"]) >= 2
    video = [r for r in doc["renditions"] if r["kind"] == "video"]
    assert 1 <= len(video) <= 3
    assert [r["target_bitrate_bps"] for r in video] == [c["kbps"] * 1000 for c in rec["rungs"]]
    assert video[0]["target_bitrate_bps"] == 150_000


@pytest.mark.parametrize("args, words", [
    (["--ladder", "per-title", "--target-vmaf", "150"], "--target-vmaf 150 is out of range"),
    (["--target-vmaf", "90"], "need --ladder per-title"),
    (["--ladder", "per-title", "--codec", "hevc"], "h264, vp9 and av1"),
])
def test_bad_per_title_options_are_one_sentence(source: Path, tmp_path: Path, args: list[str],
                                                words: str):
    res = run_abr("encode", str(source), "--title", "bad", "--media", str(tmp_path), *args)
    assert res.returncode == 1
    assert words in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "bad").exists()


def test_a_source_too_short_to_probe_leaves_no_title(tmp_path: Path):
    short = lavfi(tmp_path / "short.mp4", "testsrc2=size=320x180:rate=30", seconds=1.2)
    res = run_abr("encode", str(short), "--title", "s", "--media", str(tmp_path / "m"),
                  "--ladder", "per-title")
    assert res.returncode == 1 and "too short to probe" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "m" / "s").exists()


def test_segment_scores_average_the_frames_inside_each_segment():
    from encoder.quality import segment_scores

    def frame(n: int, vmaf: float) -> dict:
        return {"frameNum": n, "metrics": {"vmaf": vmaf, "psnr_y": 40.0, "float_ssim": 0.99}}

    segs = [{"duration_s": 2.0}, {"duration_s": 2.0}, {"duration_s": 1.0}]
    out = segment_scores([frame(0, 90), frame(30, 80), frame(60, 70), frame(90, 60)], segs, 30.0)
    assert out[0] == {"vmaf": 85.0, "psnr_db": 40.0, "ssim": 0.99, "frames_scored": 2}
    assert out[1] is not None and out[1]["vmaf"] == 65.0
    assert out[2] is None


def test_quality_scores_every_segment_of_every_rendition(source: Path, tmp_path: Path):
    res = run_abr("encode", str(source), "--title", "q", "--media", str(tmp_path), "--quality",
                  "--segment-s", "2", "--progress", "none")
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "q" / "title.json").read_text())
    video = [r for r in doc["renditions"] if r["kind"] == "video"]
    for r in video:
        segs = [s["quality"] for s in r["segments"]]
        assert len(segs) == 2 and all(0 < q["vmaf"] <= 100 and q["frames_scored"] >= 1 for q in segs)
        mean = sum(q["vmaf"] for q in segs) / 2
        assert abs(mean - r["quality"]["vmaf"]) < 3
