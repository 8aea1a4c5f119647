"""`abr encode --chunks`: chunk tasks on a real LocalCluster, joined into one continuous
CMAF track per rendition, equivalent to the one-process encode."""

from __future__ import annotations

import json
import re
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from encoder import boxes
from encoder.chunks import chunk_count, keyframes, segment_starts
from encoder.encode import EncodeConfig, encode
from encoder.errors import EncoderError
from encoder.ffmpeg import ffmpeg_exe
from tests.encoder.conftest import lavfi, run_abr


def test_segment_starts_replay_the_dash_muxer() -> None:
    # 25 fps, 1.5-s segments: keyframes 38/37 frames apart, segments of 1.52 then 3.0 s
    keys = keyframes(200, Fraction(25), 1.5, 38)
    assert keys == [0, 38, 75, 113, 150, 188]
    assert segment_starts(keys, Fraction(25), 1.5) == [0, 38, 113, 188]
    assert segment_starts(keyframes(240, Fraction(30), 2.0, 60), Fraction(30), 2.0) == [0, 60, 120, 180]


def test_chunk_count() -> None:
    assert chunk_count("auto", 600, 2) == 4
    assert chunk_count("auto", 12, 8) == 1  # no chunk under 10 s
    assert chunk_count("auto", 3000, 2) == 10  # no chunk over 300 s
    assert chunk_count("3", 60, 2) == 3
    with pytest.raises(EncoderError, match="neither 'auto' nor a number"):
        chunk_count("0", 60, 2)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One 16-s source encoded by one process and in 3 chunks (2-s segments)."""
    d = tmp_path_factory.mktemp("chunked")
    src = lavfi(d / "src.mp4", "testsrc2=size=320x180:rate=30", seconds=16)
    media = d / "media"
    common = dict(source=src, media_dir=media, segment_s=2.0, progress="none")
    one = encode(EncodeConfig(title="one", **common))  # type: ignore[arg-type]
    out = run_abr("encode", str(src), "--title", "chunked", "--media", str(media), "--segment-s", "2",
                  "--progress", "none", "--chunks", "3", "--workers", "2", "--json")
    assert out.returncode == 0, out.stderr
    return {"src": src, "media": media, "one": one, "chunked": json.loads(out.stdout)}


def _video(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in doc["renditions"] if r["kind"] == "video"]


def _track(folder: Path, rendition: dict[str, Any]) -> bytes:
    return (folder / rendition["init"]).read_bytes() + b"".join(
        (folder / s["uri"]).read_bytes() for s in rendition["segments"])


def test_same_segments_as_one_process(pair: dict[str, Any]) -> None:
    for a, b in zip(_video(pair["one"]), _video(pair["chunked"]), strict=True):
        assert [s["duration_s"] for s in a["segments"]] == [s["duration_s"] for s in b["segments"]]
    audio = [[r for r in pair[k]["renditions"] if r["kind"] == "audio"][0] for k in ("one", "chunked")]
    totals = [sum(s["duration_s"] for s in r["segments"]) for r in audio]
    assert abs(totals[0] - totals[1]) <= 1024 / 48000  # one AAC frame at most
    assert "encoded in 3 chunks on Dask" in pair["chunked"]["notes"]


def test_one_continuous_track(pair: dict[str, Any]) -> None:
    folder = pair["media"] / "chunked"
    for r in _video(pair["chunked"]):
        init = (folder / r["init"]).read_bytes()
        scale = boxes.timescale(init)
        decode = present = 0
        for n, s in enumerate(r["segments"], start=1):
            data = (folder / s["uri"]).read_bytes()
            m = boxes.measure(data)
            assert (m.decode_time, m.presentation_time) == (decode, present), s["uri"]
            assert [int.from_bytes(data[b.body + 4 : b.body + 8], "big")
                    for b in boxes.find(data, b"moof", b"mfhd")] == [n]
            assert abs(m.presentation_duration / scale - s["duration_s"]) < 1e-6
            decode += m.decode_duration
            present += m.presentation_duration
        assert len(list((folder / r["init"]).parent.glob("init*"))) == 1


def _frames(data: bytes, tmp: Path) -> list[int]:
    path = tmp / "track.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as f:
        return [int(fr.pts) for fr in f.decode(video=0)]


def test_every_frame_present_once(pair: dict[str, Any], tmp_path: Path) -> None:
    for a, b in zip(_video(pair["one"]), _video(pair["chunked"]), strict=True):
        one = _frames(_track(pair["media"] / "one", a), tmp_path)
        chunked = _frames(_track(pair["media"] / "chunked", b), tmp_path)
        assert len(chunked) == len(one) == 16 * 30
        steps = {q - p for p, q in zip(chunked, chunked[1:], strict=False)}
        assert len(steps) == 1 and steps.pop() > 0  # constant rate: no frame twice, none missing
        assert chunked[0] == one[0]


def test_plays_in_ffmpeg(pair: dict[str, Any]) -> None:
    folder = (pair["media"] / "chunked").resolve()
    for manifest in ("master.m3u8", "manifest.mpd"):
        out = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", f"file:{folder / manifest}",
                              "-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "error" not in out.stderr.lower()


def _vmaf(track: Path, src: Path) -> float:
    graph = ("[0:v]setpts=PTS-STARTPTS[a];[1:v]setpts=PTS-STARTPTS[b];"
             "[a][b]libvmaf=model=version=vmaf_v0.6.1:n_subsample=2")
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(track), "-i", str(src),
                          "-lavfi", graph, "-f", "null", "-"], capture_output=True, text=True, timeout=300)
    m = re.search(r"VMAF score: ([\d.]+)", out.stderr)
    assert m, out.stderr[-2000:]
    return float(m.group(1))


@pytest.mark.xfail(strict=True, reason="measured 95.95 vs 94.79 (-1.16) with 5.3-s chunks: x264's "
                   "rate control restarts at each chunk (~4 dB PSNR lower over the first second); "
                   "the goal is 0.5")
def test_vmaf_within_half_a_point(pair: dict[str, Any], tmp_path: Path) -> None:
    scores = []
    for name in ("one", "chunked"):
        r = _video(pair[name])[0]
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(_track(pair["media"] / name, r))
        scores.append(_vmaf(path, pair["src"]))
    assert abs(scores[0] - scores[1]) <= 0.5, scores


def test_25_fps_three_second_segments_match(tmp_path: Path) -> None:
    """25 fps with --segment-s 1.5 makes 3.0-s segments in one process; chunks must agree."""
    src = lavfi(tmp_path / "s25.mp4", "testsrc2=size=320x180:rate=25", seconds=9, audio=False)
    common = dict(source=src, media_dir=tmp_path / "m", segment_s=1.5, progress="none")
    one = encode(EncodeConfig(title="one", **common))  # type: ignore[arg-type]
    chunked = encode(EncodeConfig(title="ch", chunks="3", workers=2, **common))  # type: ignore[arg-type]
    durations = [[s["duration_s"] for s in _video(d)[0]["segments"]] for d in (one, chunked)]
    assert durations[0] == durations[1] == [1.52, 3.0, 3.0, 1.48]


def test_chunks_refuse_encryption(tmp_path: Path) -> None:
    src = lavfi(tmp_path / "s.mp4", "testsrc2=size=320x180:rate=30", seconds=2, audio=False)
    with pytest.raises(EncoderError, match="--chunks cannot encrypt"):
        encode(EncodeConfig(source=src, title="e", media_dir=tmp_path / "m", chunks="2",
                            encrypt="clearkey", progress="none"))


def test_boundaries_prefer_a_cheap_seek() -> None:
    """Between two segment starts equally near an equal share, the one just after a source
    keyframe (less decode thrown away) is taken."""
    from encoder.chunks import boundaries
    from encoder.ladder import Rendition
    from encoder.plan import EncodePlan

    plan = EncodePlan(source="s.mp4", renditions=(Rendition("180p", 320, 180, 300_000, 330_000, 660_000),),
                      codec="h264", fps=Fraction(30), segment_s=2.0, audio=False, duration_s=40.0)
    assert boundaries(plan, 2) == [0, 600]  # 20 s: the exact half
    source_keys = [0.0, 21.5]  # a source keyframe every 21.5 s
    assert boundaries(plan, 2, lambda t: max(k for k in source_keys if k <= t)) == [0, 720]
