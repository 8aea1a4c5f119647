"""Every kind of source: the ones that work, and the ones that get one clear sentence."""

import json

import av
import pytest

from tests.encoder.conftest import run_abr


def _encode(src, media, title, *extra):
    return run_abr("encode", str(src), "--title", title, "--media", str(media), "--segment-s", "1",
                   "--progress", "none", *extra)


def _no_title_left(media, title):
    return not (media / title).exists() and not list(media.glob(".tmp-*"))


def test_odd_dimensions_video_only_becomes_even_sizes(sources, tmp_path):
    out = _encode(sources["odd"], tmp_path, "odd")
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "odd" / "title.json").read_text())
    assert [(r["width"], r["height"]) for r in doc["renditions"]] == [(426, 240), (640, 360), (852, 480)]
    assert all(r["kind"] == "video" for r in doc["renditions"])
    assert "AUDIO=" not in (tmp_path / "odd" / "master.m3u8").read_text()


def test_portrait_source_keeps_its_orientation(sources, tmp_path):
    out = _encode(sources["portrait"], tmp_path, "portrait")
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "portrait" / "title.json").read_text())
    assert [(r["width"], r["height"]) for r in doc["renditions"] if r["kind"] == "video"] == [
        (240, 426), (360, 640)
    ]


def test_source_shorter_than_one_segment_gives_one_segment(sources, tmp_path):
    out = run_abr("encode", str(sources["short"]), "--title", "short", "--media", str(tmp_path),
                  "--progress", "none")  # 4-s segments, 1.2-s source
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "short" / "title.json").read_text())
    assert [len(r["segments"]) for r in doc["renditions"] if r["kind"] == "video"] == [1]


def test_variable_frame_rate_source_is_encoded_at_a_constant_rate(sources, tmp_path):
    out = _encode(sources["vfr"], tmp_path, "vfr")
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "vfr" / "title.json").read_text())
    r = doc["renditions"][0]
    data = (tmp_path / "vfr" / r["init"]).read_bytes() + b"".join(
        (tmp_path / "vfr" / s["uri"]).read_bytes() for s in r["segments"])
    path = tmp_path / "joined.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as c:
        pts = [p.pts for p in c.demux(video=0) if p.size]
    steps = {b - a for a, b in zip(sorted(pts), sorted(pts)[1:], strict=False)}
    assert len(steps) == 1  # constant frame duration


def test_encode_progress_is_plain_lines_when_not_a_terminal(sources, tmp_path):
    out = run_abr("encode", str(sources["small"]), "--title", "p", "--media", str(tmp_path),
                  "--segment-s", "1")
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("encode p:")]
    assert lines and lines[-1].startswith("encode p: 100%")
    assert "\r" not in out.stderr
    assert "title p:" in out.stdout and "180p" in out.stdout


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d, s: d / "missing.mp4", "does not exist"),
        (lambda d, s: d, "is a folder"),
        (lambda d, s: _write(d / "empty.mp4", b""), "is an empty file"),
        (lambda d, s: _write(d / "notes.txt", b"hello, this is not a video\n" * 50), "a text file"),
        (lambda d, s: _write(d / "cut.mp4", s["small"].read_bytes()[: s["small"].stat().st_size // 2]),
         "truncated"),  # index at the end (no faststart): the index is missing
        (lambda d, s: _cut(d, s["faststart"]), "is truncated: it claims"),  # index first, data cut
        (lambda d, s: _write(d / "garbage.mp4", bytes(range(256)) * 400), "not a readable video"),
        (lambda d, s: s["audio_only"], "no video stream (an audio-only file)"),
    ],
)
def test_bad_sources_get_one_sentence_and_no_title(sources, tmp_path, make, words):
    src = make(tmp_path, sources)
    media = tmp_path / "media"
    out = _encode(src, media, "bad")
    assert out.returncode == 1
    assert words in out.stderr
    assert out.stderr.startswith("abr encode: error: ") and out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr
    assert not (media / "bad").exists()


def _cut(d, src):
    return _write(d / "cut-fast.mp4", src.read_bytes()[: src.stat().st_size // 3])


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "options, words",
    [
        (("--codec", "h266"), "unknown codec 'h266'"),
        (("--segment-s", "0.1"), "out of range"),
        (("--ladder", "nope.json"), "ladder file nope.json does not exist"),
        (("--title", "../escape"), "is not allowed"),
    ],
)
def test_bad_options_get_one_sentence(sources, tmp_path, options, words):
    args = ["encode", str(sources["small"]), "--title", "ok", "--media", str(tmp_path), *options]
    out = run_abr(*args)
    assert out.returncode == 1 and words in out.stderr and "Traceback" not in out.stderr
    assert not list(tmp_path.iterdir())


def test_malformed_ladder_file(sources, tmp_path):
    ladder = tmp_path / "ladder.json"
    ladder.write_text('{"rungs": [{"height": 240}]}')
    out = _encode(sources["small"], tmp_path / "m", "x", "--ladder", str(ladder))
    assert out.returncode == 1 and "rung 1 needs 'bitrate_kbps'" in out.stderr
