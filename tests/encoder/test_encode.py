"""Real encodes of tiny lavfi clips: layout, manifests, alignment, and ffmpeg reading them back."""

import io
import json
import subprocess

import av
import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from encoder.ffmpeg import ffmpeg_exe


def version(folder):
    return json.loads((folder / "title.json").read_text())["version"]


def rdir(tiny_title, rid):
    """A rendition's folder: TITLE/<version>/<rid>/."""
    return tiny_title.path / version(tiny_title.path) / rid


def test_title_layout_one_set_of_segments(tiny_title):
    folder = tiny_title.path
    v = version(folder)
    assert v.startswith("v") and len(v) == 9
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.mpd", "master.m3u8", "title.json", v
    ]
    assert sorted(p.name for p in (folder / v).iterdir()) == ["240p", "360p", "audio"]
    for rid in ("240p", "360p", "audio"):
        names = sorted(p.name for p in (folder / v / rid).iterdir())
        assert names[0] == "index.m3u8" and names[1] == "init.mp4"
        assert all(n.startswith("seg-") and n.endswith(".m4s") for n in names[2:])
    # No media file lives outside the rendition folders (one copy, both manifests).
    assert not list(folder.glob("*.m4s")) and not list(folder.glob("*.mp4"))
    assert not list((folder / v).glob("*.m4s")) and not list((folder / v).glob("*.mp4"))


def test_title_json_records_ladder_and_measurements(tiny_title):
    doc = json.loads((tiny_title.path / "title.json").read_text())
    assert doc["title"] == "tiny" and doc["codec"] == "h264" and doc["segment_s"] == 2.0
    assert abs(doc["duration_s"] - 8.0) < 0.2
    assert doc["source"]["width"] == 640 and doc["source"]["has_audio"] is True
    video = [r for r in doc["renditions"] if r["kind"] == "video"]
    assert [r["id"] for r in video] == ["240p", "360p"]
    for r in doc["renditions"]:
        sizes = [s["size_bytes"] for s in r["segments"]]
        files = [(tiny_title.path / s["uri"]).stat().st_size for s in r["segments"]]
        assert sizes == files
        bits = sum(sizes) * 8
        secs = sum(s["duration_s"] for s in r["segments"])
        assert r["average_bitrate_bps"] == round(bits / secs)
        assert r["peak_bitrate_bps"] >= r["average_bitrate_bps"]
    for r in video:  # capped VBR holds: average near target, peaks under ~maxrate
        assert 0.6 * r["target_bitrate_bps"] < r["average_bitrate_bps"] < 1.15 * r["target_bitrate_bps"]
        assert r["codecs"].startswith("avc1.")
        assert len(r["segments"]) == 4


def test_hls_master_and_media_playlists(tiny_title):
    folder = tiny_title.path
    doc = json.loads((folder / "title.json").read_text())
    audio = doc["renditions"][-1]
    master = m3u8.load(str(folder / "master.m3u8"))
    assert master.is_variant and len(master.playlists) == 2
    by_uri = {p.uri: p.stream_info for p in master.playlists}
    for r in doc["renditions"][:-1]:
        info = by_uri[r["playlist"]]
        assert info.bandwidth == r["peak_bitrate_bps"] + audio["peak_bitrate_bps"]
        assert info.average_bandwidth == r["average_bitrate_bps"] + audio["average_bitrate_bps"]
        assert info.resolution == (r["width"], r["height"])
        assert info.codecs == f"{r['codecs']},mp4a.40.2"
        assert info.frame_rate == 30.0
        assert info.audio == "audio"
    v = doc["version"]
    assert [(m.type, m.group_id, m.uri) for m in master.media] == [("AUDIO", "audio", f"{v}/audio/index.m3u8")]
    text = (folder / v / "360p" / "index.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and "#EXT-X-INDEPENDENT-SEGMENTS" in text
    media = m3u8.load(str(folder / v / "360p" / "index.m3u8"))
    assert media.is_endlist and media.segment_map[0].uri == "init.mp4"
    assert [s.uri for s in media.segments] == [f"seg-0000{i}.m4s" for i in range(1, 5)]
    assert all(s.duration <= media.target_duration for s in media.segments)


def test_dash_mpd_references_the_same_segments(tiny_title):
    folder = tiny_title.path
    mpd = MPEGDASHParser.parse(str(folder / "manifest.mpd"))
    assert mpd.type == "static"
    sets = mpd.periods[0].adaptation_sets
    reps = {r.id: (r, s) for s in sets for r in s.representations}
    assert set(reps) == {"240p", "360p", "audio"}
    v = version(folder)
    for rid, (rep, _) in reps.items():
        tpl = rep.segment_templates[0]
        assert tpl.initialization.replace("$RepresentationID$", rid) == f"{v}/{rid}/init.mp4"
        media = tpl.media.replace("$RepresentationID$", rid)
        n = sum((s.r or 0) + 1 for s in tpl.segment_timelines[0].Ss)
        hls = m3u8.load(str(folder / v / rid / "index.m3u8"))
        assert [media.replace("$Number%05d$", f"{i:05d}") for i in range(1, n + 1)] == [
            f"{v}/{rid}/{s.uri}" for s in hls.segments
        ]


def _first_packet(init: bytes, seg: bytes) -> tuple[bool, float]:
    with av.open(io.BytesIO(init + seg)) as c:
        stream = c.streams.video[0]
        for pkt in c.demux(stream):
            if pkt.size:
                return bool(pkt.is_keyframe), float(pkt.pts * stream.time_base)
    raise AssertionError("empty segment")


def test_every_segment_starts_with_a_keyframe_at_the_same_time_in_every_rung(tiny_title):
    starts = {}
    for rid in ("240p", "360p"):
        init = (rdir(tiny_title, rid) / "init.mp4").read_bytes()
        firsts = [_first_packet(init, p.read_bytes()) for p in sorted(rdir(tiny_title, rid).glob("seg-*.m4s"))]
        assert all(key for key, _ in firsts), rid
        starts[rid] = [round(t, 3) for _, t in firsts]
    assert starts["240p"] == starts["360p"] == [0.0, 2.0, 4.0, 6.0]


def test_cmaf_brand(tiny_title):
    head = (rdir(tiny_title, "360p") / "init.mp4").read_bytes()[:64]
    assert b"ftyp" in head and b"cmfc" in head


# ffmpeg's HLS demuxer, probing every fMP4 variant of a master playlist at once, logs
# these for ffmpeg's own `hls` muxer output too (checked with ffmpeg 9.0.2): not ours.
HLS_PROBE_QUIRKS = ("Invalid NAL unit size", "missing picture in access unit")


def test_ffmpeg_reads_both_manifests_back(tiny_title):
    for name in ("master.m3u8", "manifest.mpd", f"{version(tiny_title.path)}/360p/index.m3u8"):
        out = subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-i", str(tiny_title.path / name),
             "-map", "0:v:0", "-map", "0:a:0?", "-f", "null", "-"],
            capture_output=True, text=True, timeout=60,
        )
        errors = [ln for ln in out.stderr.splitlines() if not any(q in ln for q in HLS_PROBE_QUIRKS)]
        assert out.returncode == 0 and errors == [], (name, out.stderr)


def test_quality_scores_every_rung(tiny_source, tmp_path):
    from encoder.encode import EncodeConfig, encode

    doc = encode(EncodeConfig(source=tiny_source, title="q", media_dir=tmp_path, segment_s=2.0,
                              quality=True, progress="none"))
    saved = json.loads((tmp_path / "q" / "title.json").read_text())
    assert saved["renditions"] == doc["renditions"]
    scores = [r["quality"] for r in saved["renditions"] if r["kind"] == "video"]
    assert [sorted(s) for s in scores] == [["psnr_db", "ssim", "vmaf"]] * 2
    low, high = scores
    assert 0 < low["vmaf"] < high["vmaf"] <= 100
    assert 20 < low["psnr_db"] < high["psnr_db"] < 80
    assert 0.8 < low["ssim"] < high["ssim"] <= 1
    assert "quality" not in saved["renditions"][-1]  # audio


@pytest.mark.slow
@pytest.mark.parametrize("codec, prefix", [("vp9", "vp09."), ("av1", "av01.")])
def test_other_codecs(tiny_source, tmp_path, codec, prefix):
    from encoder.encode import EncodeConfig, encode

    doc = encode(EncodeConfig(source=tiny_source, title=codec, media_dir=tmp_path, segment_s=2.0,
                              codec=codec, progress="none"))
    video = [r for r in doc["renditions"] if r["kind"] == "video"]
    assert all(r["codecs"].startswith(prefix) for r in video)
    assert all(len(r["segments"]) == 4 for r in video)
    master = (tmp_path / codec / "master.m3u8").read_text()
    assert f'CODECS="{video[0]["codecs"]},mp4a.40.2"' in master


def _boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """Top-level ISO BMFF boxes (ISO/IEC 14496-12 4.2): (type, payload)."""
    out, i = [], 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i:i + 4], "big")
        kind = data[i + 4:i + 8]
        if size == 1:
            size = int.from_bytes(data[i + 8:i + 16], "big")
        if size < 8:
            break
        out.append((kind, data[i + 8:i + size]))
        i += size
    return out


@pytest.mark.parametrize(("codec", "entry"), [("vp9", b"vp09"), ("av1", b"av01")])
def test_vp9_and_av1_are_cmaf_fmp4_not_webm(tmp_path, codec, entry):
    from encoder.encode import EncodeConfig, encode
    from tests.encoder.conftest import lavfi

    src = lavfi(tmp_path / "s.mp4", "testsrc2=size=160x90:rate=15", audio=False, seconds=2)
    doc = encode(EncodeConfig(source=src, title="v", media_dir=tmp_path / "m", segment_s=1.0,
                              codec=codec, progress="none"))
    rung = doc["renditions"][0]
    assert rung["codecs"].startswith(entry.decode() + ".")
    folder = tmp_path / "m" / "v"
    init = (folder / rung["init"]).read_bytes()
    boxes = _boxes(init)
    assert boxes[0][0] == b"ftyp", init[:16]
    ftyp = boxes[0][1]
    brands = {ftyp[i:i + 4] for i in range(0, len(ftyp), 4)}
    assert brands & {b"cmfc", b"iso6"}, ftyp
    assert b"moov" in [k for k, _ in boxes] and entry in init
    seg = (folder / rung["segments"][0]["uri"]).read_bytes()
    kinds = [k for k, _ in _boxes(seg)]
    assert b"moof" in kinds and b"mdat" in kinds, kinds
