"""Video a real source carries: HEVC (hvc1 CMAF), multi-codec titles, interlaced sources
(idet + bwdif), 10-bit/HDR kept or tone-mapped, half-rate low rungs of 50/60 fps."""

from __future__ import annotations

import io
import json
import subprocess
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from encoder.encode import EncodeConfig, encode
from encoder.ffmpeg import ffmpeg_exe
from encoder.interlace import is_interlaced, parse_idet
from encoder.ladder import Rendition
from encoder.plan import EncodePlan, build_args
from tests.encoder.test_encode import _boxes

PLAN = EncodePlan(source="/in/src.mp4",
                  renditions=(Rendition("90p", 160, 90, 150_000, 165_000, 330_000, 2),
                              Rendition("180p", 320, 180, 300_000, 330_000, 660_000)),
                  codec="h264", fps=Fraction(50), segment_s=2.0, audio=False, duration_s=2.0)


def _src(out: Path, vf: str = "", rate: int = 30, seconds: float = 2, codec: tuple[str, ...] = (
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")) -> Path:
    args = [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={rate}",
            "-t", str(seconds)]
    if vf:
        args += ["-vf", vf]
    subprocess.run([*args, *codec, str(out)], check=True, timeout=120)
    return out


def _ladder(tmp: Path, rungs: str = '[{"height": 180, "bitrate_kbps": 300}, {"height": 90, "bitrate_kbps": 150}]') -> str:
    tmp.mkdir(parents=True, exist_ok=True)
    p = tmp / f"ladder-{abs(hash(rungs))}.json"
    p.write_text(rungs)
    return str(p)


def _encode(src: Path, tmp: Path, **kw) -> tuple[Path, dict]:
    doc = encode(EncodeConfig(source=src, title="t", media_dir=tmp / "m", segment_s=1.0,
                              ladder=kw.pop("ladder", None) or _ladder(tmp), progress="none", **kw))
    return tmp / "m" / "t", doc


def _decoded(folder: Path, r: dict) -> tuple[av.VideoFrame, int]:
    data = b"".join((folder / u).read_bytes() for u in [r["init"], *(s["uri"] for s in r["segments"])])
    with av.open(io.BytesIO(data)) as c:
        frames = list(c.decode(video=0))
        return frames[0], len(frames)


def test_half_rate_rungs_and_deinterlace_in_the_argv():
    args = build_args(replace(PLAN, deinterlace=True), "/out/manifest.mpd")
    graph = args[args.index("-filter_complex") + 1]
    assert graph.startswith("[0:v:0]bwdif=deint=all:mode=send_field:parity=auto[s0];[s0]fps=fps=50[s1]")
    assert "fps=fps=25" in graph  # the 90p rung
    opt = dict(zip(args[::2], args[1::2], strict=False))
    assert (opt["-g:v:0"], opt["-g:v:1"]) == ("50", "100") and "-g" not in opt


def test_ten_bit_per_codec_in_the_argv():
    plan = replace(PLAN, codecs=("h264", "hevc"), bit_depth=10, color=(9, 16, 9))
    args = build_args(plan, "/out/manifest.mpd")
    opt = dict(zip(args[::2], args[1::2], strict=False))
    assert (opt["-c:v:0"], opt["-c:v:2"], opt["-tag:v:2"]) == ("libx264", "libx265", "hvc1")
    assert (opt["-pix_fmt:v:0"], opt["-pix_fmt:v:2"], opt["-profile:v:2"]) == ("yuv420p", "yuv420p10le", "main10")
    graph = args[args.index("-filter_complex") + 1]
    assert "tonemap=hable" in graph
    assert "setparams=color_primaries=bt2020:color_trc=smpte2084:colorspace=bt2020nc" in graph
    assert opt["-adaptation_sets"] == "id=0,streams=0,1 id=1,streams=2,3"


def test_hevc_is_hvc1_cmaf_fmp4(tmp_path):
    folder, doc = _encode(_src(tmp_path / "s.mp4"), tmp_path, codec="hevc")
    rung = doc["renditions"][0]
    assert rung["codecs"].startswith("hvc1.1.") and rung["codec"] == "hevc"
    init = (folder / rung["init"]).read_bytes()
    boxes = dict(_boxes(init))
    assert b"cmfc" in boxes[b"ftyp"] and b"moov" in boxes
    assert b"hvc1" in init and b"hvcC" in init and b"hev1" not in init  # parameter sets in hvcC
    kinds = [k for k, _ in _boxes((folder / rung["segments"][0]["uri"]).read_bytes())]
    assert b"moof" in kinds and b"mdat" in kinds
    frame, count = _decoded(folder, rung)
    assert count == 60 and frame.format.name == "yuv420p"
    assert f'CODECS="{rung["codecs"]}"' in (folder / "master.m3u8").read_text()


def test_multi_codec_title_offers_every_ladder(tmp_path):
    folder, doc = _encode(_src(tmp_path / "s.mp4"), tmp_path, codec="h264,hevc,av1")
    assert doc["codecs"] == ["h264", "hevc", "av1"]
    video = [r for r in doc["renditions"] if r["kind"] == "video"]
    assert [r["id"] for r in video] == ["90p-h264", "180p-h264", "90p-hevc", "180p-hevc", "90p-av1", "180p-av1"]
    master = m3u8.load(str(folder / "master.m3u8"))
    assert sorted(p.stream_info.codecs.split(".")[0] for p in master.playlists) == [
        "av01", "av01", "avc1", "avc1", "hvc1", "hvc1"]
    sets = MPEGDASHParser.parse(str(folder / "manifest.mpd")).periods[0].adaptation_sets
    assert [{r.codecs.split(".")[0] for r in s.representations} for s in sets] == [{"avc1"}, {"hvc1"}, {"av01"}]
    starts = {len(r["segments"]) for r in video}
    assert starts == {2}


@pytest.fixture(scope="module")
def hdr_title(tmp_path_factory):
    d = tmp_path_factory.mktemp("hdr")
    src = _src(d / "hdr.mp4", "format=yuv420p10le,setparams=color_primaries=bt2020:color_trc=smpte2084:"
               "colorspace=bt2020nc", codec=("-c:v", "libx265", "-preset", "ultrafast",
                                             "-x265-params", "log-level=error"))
    return _encode(src, d, codec="h264,hevc,vp9", ladder=_ladder(d, '[{"height": 90, "bitrate_kbps": 150}]'))


def test_hdr_kept_in_ten_bit_codecs(hdr_title):
    folder, doc = hdr_title
    by = {r["codec"]: r for r in doc["renditions"] if r["kind"] == "video"}
    assert doc["source"]["bit_depth"] == 10 and doc["source"]["color_transfer"] == 16
    for codec in ("hevc", "vp9"):
        frame, _ = _decoded(folder, by[codec])
        assert frame.format.name == "yuv420p10le", codec
        assert (int(frame.color_primaries), int(frame.color_trc), int(frame.colorspace)) == (9, 16, 9), codec
        assert by[codec]["video_range"] == "PQ" and by[codec]["bit_depth"] == 10
    assert by["hevc"]["codecs"].startswith("hvc1.2.") and by["vp9"]["codecs"].startswith("vp09.02.")
    master = (folder / "master.m3u8").read_text()
    ranges = {p.uri.split("/")[1]: "VIDEO-RANGE=PQ" in line for p, line in zip(
        m3u8.loads(master).playlists, [ln for ln in master.splitlines() if ln.startswith("#EXT-X-STREAM")],
        strict=True)}
    assert ranges == {"90p-h264": False, "90p-hevc": True, "90p-vp9": True}
    mpd = (folder / "manifest.mpd").read_text()
    assert 'schemeIdUri="urn:mpeg:mpegB:cicp:TransferCharacteristics" value="16"' in mpd


def test_h264_falls_back_to_sdr_with_a_tone_map_and_says_so(hdr_title):
    folder, doc = hdr_title
    h264 = next(r for r in doc["renditions"] if r.get("codec") == "h264")
    frame, _ = _decoded(folder, h264)
    assert frame.format.name == "yuv420p" and int(frame.color_trc) == 1 and h264["video_range"] == "SDR"
    assert any("h264: the HDR source (PQ) is tone-mapped to 8-bit SDR" in n for n in doc["notes"])


def test_idet_counts():
    log = ("[Parsed_idet_0 @ 0x1] Single frame detection: TFF: 3 BFF: 0 Progressive: 9 Undetermined: 1\n"
           "[Parsed_idet_0 @ 0x1] Multi frame detection: TFF:    13 BFF:     0 Progressive:     2 "
           "Undetermined:     1\n")
    counts = parse_idet(log)
    assert counts == {"tff": 13, "bff": 0, "progressive": 2, "undetermined": 1} and is_interlaced(counts)
    assert not is_interlaced({"tff": 1, "bff": 1, "progressive": 30, "undetermined": 0})


def test_interlaced_source_is_detected_and_deinterlaced(tmp_path):
    src = _src(tmp_path / "i.mkv", "tinterlace=mode=interleave_top,fieldorder=tff", rate=50,
               codec=("-c:v", "libx264", "-preset", "ultrafast", "-flags", "+ildct+ilme", "-x264opts",
                      "tff=1", "-pix_fmt", "yuv420p"))
    ladder = _ladder(tmp_path, '[{"height": 180, "bitrate_kbps": 300, "frame_rate": "full"},'
                               ' {"height": 90, "bitrate_kbps": 150}]')
    folder, doc = _encode(src, tmp_path, ladder=ladder)
    found = doc["source"]["interlace"]
    assert found["interlaced"] and found["deinterlaced"] and found["field_order"] != "progressive"
    assert found["idet"]["tff"] + found["idet"]["bff"] > found["idet"]["progressive"]
    assert any("deinterlaced with bwdif" in n for n in doc["notes"])
    by = {r["id"]: r for r in doc["renditions"]}
    # 25i -> one frame per field (50p); the 90p rung at half rate
    assert (by["180p"]["frame_rate"], by["90p"]["frame_rate"]) == (50.0, 25.0)
    assert _decoded(folder, by["180p"])[1] == 100 and _decoded(folder, by["90p"])[1] == 50


def test_progressive_source_is_not_analysed(tmp_path):
    _, doc = _encode(_src(tmp_path / "p.mp4"), tmp_path)
    assert doc["source"]["interlace"] == {"field_order": "progressive", "interlaced": False,
                                          "deinterlaced": False}


def test_high_frame_rate_low_rungs_run_at_half_rate(tmp_path):
    folder, doc = _encode(_src(tmp_path / "hfr.mp4", rate=60), tmp_path)
    by = {r["id"]: r for r in doc["renditions"]}
    assert (by["180p"]["frame_rate"], by["90p"]["frame_rate"]) == (30.0, 30.0)
    assert _decoded(folder, by["90p"])[1] == 60
    assert json.loads((folder / "title.json").read_text())["notes"] == ["rungs up to 180p run at half rate (30 fps)"]
    # configurable: a rung may keep the full rate
    full = _ladder(tmp_path, '[{"height": 180, "bitrate_kbps": 300, "frame_rate": "full"}]')
    folder2, doc2 = _encode(_src(tmp_path / "hfr.mp4", rate=60), tmp_path / "b", ladder=full)
    assert doc2["renditions"][0]["frame_rate"] == 60.0
    assert "FRAME-RATE=60.000" in (folder2 / "master.m3u8").read_text()
