"""What a real source carries survives the encode: audio languages, 5.1, text subtitles
(from the source and side-loaded), with real ffmpeg on tiny lavfi clips."""

from __future__ import annotations

import io
import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import av
import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from encoder.encode import EncodeConfig, encode
from encoder.ffmpeg import ffmpeg_exe
from encoder.languages import LanguageError, language, source_language
from encoder.probe import SourceInfo, SubtitleTrack
from encoder.tracks import plan_subtitles
from tests.encoder.conftest import run_abr

NS = "urn:mpeg:dash:schema:mpd:2011"
SRT = """1
00:00:01,000 --> 00:00:02,500
First cue

2
00:00:04,000 --> 00:00:06,000
Second line of the test
"""
SURROUND = ("aevalsrc=0.5*sin(220*2*PI*t)|0.5*sin(330*2*PI*t)|0.5*sin(440*2*PI*t)|0.1*sin(50*2*PI*t)"
            "|0.5*sin(550*2*PI*t)|0.5*sin(770*2*PI*t):s=48000:c=5.1")


def make_tracks_source(out: Path, seconds: float = 4, surround: bool = False,
                       subtitles: str | None = "mov_text", size: str = "160x90") -> Path:
    """A clip with an English (440 Hz, default) and a French (660 Hz) stereo track, an
    optional 5.1 English commentary, and the SRT above as a subtitle track."""
    srt = out.with_suffix(".srt")
    srt.write_text(SRT)
    args = [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000"]
    maps = ["-map", "0:v", "-map", "1:a", "-map", "2:a"]
    if surround:
        args += ["-f", "lavfi", "-i", SURROUND]
        maps += ["-map", "3:a"]
    if subtitles:
        args += ["-i", str(srt)]
        maps += ["-map", f"{4 if surround else 3}:s"]
    args += ["-t", str(seconds), *maps, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-ac:a:0", "2", "-ac:a:1", "2",
             "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fre",
             "-disposition:a:0", "default", "-disposition:a:1", "0"]
    if surround:
        args += ["-metadata:s:a:2", "language=eng", "-metadata:s:a:2", "title=Commentary",
                 "-disposition:a:2", "0"]
    if subtitles:
        args += ["-c:s", subtitles, "-metadata:s:s:0", "language=eng"]
    subprocess.run([*args, str(out)], check=True, timeout=120)
    return out


def _ladder(tmp: Path, text: str = '[{"height": 90, "bitrate_kbps": 150}]') -> str:
    p = tmp / "ladder.json"
    p.write_text(text)
    return str(p)


@pytest.fixture(scope="module")
def langs_title(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("langs")
    src = make_tracks_source(d / "src.mp4", surround=True)
    doc = encode(EncodeConfig(source=src, title="t", media_dir=d / "m", segment_s=2.0,
                              ladder=_ladder(d), progress="none"))
    return d / "m" / "t", doc


def test_language_codes():
    assert language("fre", where="x") == language("fr", where="x") == language("FRA", where="x")
    assert language("fre", where="x").tag == "fr" and language("eng", where="x").name == "English"
    assert language("pt-br", where="x").tag == "pt-BR"
    assert language("ace", where="x").tag == "ace"  # no two-letter code: the three-letter one
    assert source_language(None).tag == source_language("qqq").tag == "und"
    with pytest.raises(LanguageError, match="unknown language code 'xx' in --audio-lang"):
        language("xx", where="--audio-lang")


def test_every_audio_track_is_a_rendition_with_its_language(langs_title):
    folder, doc = langs_title
    audio = [r for r in doc["renditions"] if r["kind"] == "audio"]
    assert [(r["id"], r["language"], r["channels"], r["default"]) for r in audio] == [
        ("audio-en", "en", 2, True), ("audio-fr", "fr", 2, False),
        ("audio-en-2", "en", 2, False), ("audio-en-2-6ch", "en", 6, False)]
    assert [r["name"] for r in audio] == ["English", "French", "Commentary", "Commentary (5.1)"]
    master = m3u8.load(str(folder / "master.m3u8"))
    media = [(m.type, m.group_id, m.language, m.name, m.default, m.autoselect, m.channels)
             for m in master.media]
    assert media == [("AUDIO", "audio", "en", "English", "YES", "YES", "2"),
                     ("AUDIO", "audio", "fr", "French", "NO", "YES", "2"),
                     ("AUDIO", "audio", "en", "Commentary", "NO", "YES", "2"),
                     ("AUDIO", "audio", "en", "Commentary (5.1)", "NO", "YES", "6"),
                     ("SUBTITLES", "subs", "en", "English", "NO", "YES", None)]
    variant = master.playlists[0].stream_info
    video = doc["renditions"][0]
    # BANDWIDTH holds the largest audio rendition a client may pick with it (the 5.1)
    assert variant.bandwidth == video["peak_bitrate_bps"] + audio[3]["peak_bitrate_bps"]
    assert variant.audio == "audio" and variant.subtitles == "subs"


def test_dash_has_one_adaptation_set_per_audio_rendition(langs_title):
    folder, _ = langs_title
    mpd = MPEGDASHParser.parse(str(folder / "manifest.mpd"))
    sets = [s for s in mpd.periods[0].adaptation_sets if s.content_type == "audio"]
    labels = [el.text for el in ET.parse(folder / "manifest.mpd").iter(f"{{{NS}}}Label")]
    got = [(s.lang, s.roles[0].value, label, s.representations[0].audio_channel_configurations[0].value)
           for s, label in zip(sets, labels, strict=False)]
    assert got == [("en", "main", "English", "2"), ("fr", "alternate", "French", "2"),
                   ("en", "alternate", "Commentary", "2"), ("en", "alternate", "Commentary (5.1)", "6")]


def _decode_audio(folder: Path, rendition: dict) -> tuple[int, float]:
    data = b"".join((folder / u).read_bytes() for u in [rendition["init"], *(s["uri"] for s in rendition["segments"])])
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.audio[0]
        frames = list(c.decode(stream))
        return stream.codec_context.channels, sum(f.samples for f in frames) / stream.codec_context.sample_rate


def test_surround_keeps_six_channels_and_each_track_its_own_tone(langs_title):
    folder, doc = langs_title
    by_id = {r["id"]: r for r in doc["renditions"]}
    channels, seconds = _decode_audio(folder, by_id["audio-en-2-6ch"])
    assert channels == 6 and abs(seconds - 4) < 0.2
    assert _decode_audio(folder, by_id["audio-fr"])[0] == 2
    import numpy as np

    for rid, hz in (("audio-en", 440), ("audio-fr", 660)):
        r = by_id[rid]
        data = b"".join((folder / u).read_bytes() for u in [r["init"], r["segments"][0]["uri"]])
        with av.open(io.BytesIO(data)) as c:
            samples = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
        spectrum = np.abs(np.fft.rfft(samples[:48000]))
        assert abs(np.argmax(spectrum) * 48000 / len(samples[:48000]) - hz) < 5, rid


def test_source_subtitles_become_segmented_webvtt_and_wvtt(langs_title):
    folder, doc = langs_title
    sub = next(r for r in doc["renditions"] if r["kind"] == "subtitles")
    assert (sub["id"], sub["language"], sub["cues"], sub["from"]) == (
        "sub-en", "en", 1, "source subtitle stream 0 (mov_text)")  # the 4-s cue is past the 4-s clip
    base = folder / doc["version"] / "sub-en"
    playlist = m3u8.load(str(base / "index.m3u8"))
    assert [s.uri for s in playlist.segments] == ["seg-00001.vtt", "seg-00002.vtt"]
    first, second = ((base / s.uri).read_text() for s in playlist.segments)
    for text in (first, second):
        assert text.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n")
    assert "00:00:01.000 --> 00:00:02.500\nFirst cue" in first and "Second" not in first
    # the 1.0-2.5 cue spans the 2-s boundary: it is in both segments (RFC 8216 §3.5)
    assert "00:00:01.000 --> 00:00:02.500\nFirst cue" in second
    # DASH: WebVTT in CMAF (ffmpeg 9 does not demux wvtt): read the samples back box by box
    assert b"wvtt" in (folder / sub["init"]).read_bytes()
    shown = []
    for n, seg in enumerate(sub["segments"]):
        samples = _wvtt_samples((folder / seg["uri"]).read_bytes())
        assert samples[0][0] == 2000 * n and samples[-1][1] == 2000 * (n + 1)  # no gaps
        assert all(a[1] == b[0] for a, b in zip(samples, samples[1:], strict=False))
        shown += [(start, end, text) for start, end, text in samples if text]
    assert shown == [(1000, 2000, ["First cue"]), (2000, 2500, ["First cue"])]
    mpd = MPEGDASHParser.parse(str(folder / "manifest.mpd"))
    text = [s for s in mpd.periods[0].adaptation_sets if s.content_type == "text"]
    assert [(s.lang, s.mime_type, s.representations[0].codecs, s.roles[0].value) for s in text] == [
        ("en", "application/mp4", "wvtt", "subtitle")]


def _boxes(data: bytes):
    i = 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i:i + 4], "big")
        yield data[i + 4:i + 8], data[i + 8:i + size]
        i += size


def _wvtt_samples(seg: bytes) -> list[tuple[int, int, list[str]]]:
    """(start ms, end ms, cue texts) of each sample of a wvtt fragment (ISO/IEC 14496-30)."""
    top = dict(_boxes(seg))
    traf = dict(_boxes(dict(_boxes(top[b"moof"]))[b"traf"]))
    t = int.from_bytes(traf[b"tfdt"][4:12], "big")
    trun = traf[b"trun"]
    count = int.from_bytes(trun[4:8], "big")
    entries = [(int.from_bytes(trun[12 + 8 * k:16 + 8 * k], "big"),
                int.from_bytes(trun[16 + 8 * k:20 + 8 * k], "big")) for k in range(count)]
    mdat, out, pos = top[b"mdat"], [], 0
    for duration, size in entries:
        texts = [dict(_boxes(body))[b"payl"].decode() for kind, body in _boxes(mdat[pos:pos + size])
                 if kind == b"vttc"]
        out.append((t, t + duration, texts))
        t, pos = t + duration, pos + size
    return out


def test_side_loaded_subtitles_and_audio_lang(tmp_path):
    src = make_tracks_source(tmp_path / "src.mkv", seconds=3, subtitles="ass")
    side = tmp_path / "de.srt"
    side.write_text(SRT.replace("First cue", "Erster Hinweis"))
    out = run_abr("encode", str(src), "--title", "s", "--media", str(tmp_path / "m"), "--segment-s", "1",
                  "--ladder", _ladder(tmp_path), "--progress", "none", "--audio-lang=-,spa",
                  "--subtitles", f"{side}:de", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    audio = [(r["language"], r["name"]) for r in doc["renditions"] if r["kind"] == "audio"]
    assert audio == [("en", "English"), ("es", "Spanish")]
    subs = [(r["id"], r["language"], r["from"]) for r in doc["renditions"] if r["kind"] == "subtitles"]
    assert subs == [("sub-en", "en", "source subtitle stream 0 (ssa)"), ("sub-de", "de", "de.srt")]
    seg = (tmp_path / "m" / "s" / doc["version"] / "sub-de" / "seg-00002.vtt").read_text()
    assert "Erster Hinweis" in seg


@pytest.mark.parametrize(("args", "words"), [
    (("--audio-lang", "xx"), "unknown language code 'xx' in --audio-lang"),
    (("--audio-lang", "en,fr,de"), "gives 3 languages but the source has 2"),
    (("--subtitles", "BAD"), "does not parse"),
    (("--subtitles", "EMPTY"), "is empty"),
    (("--subtitles", "nope.srt"), "subtitle file nope.srt does not exist"),
    (("--subtitles", "GOOD:zz"), "unknown language code 'zz'"),
])
def test_bad_track_options_get_one_sentence_and_no_title(tmp_path, args, words):
    src = make_tracks_source(tmp_path / "src.mp4", seconds=1, subtitles=None)
    (tmp_path / "bad.srt").write_text("1\nthis is not\na subtitle file at all --> \n")
    (tmp_path / "empty.srt").write_text("")
    (tmp_path / "good.srt").write_text(SRT)
    names = {"BAD": "bad.srt", "EMPTY": "empty.srt", "GOOD": "good.srt"}
    args = tuple(str(tmp_path / names[a.split(":")[0]]) + a[len(a.split(":")[0]):]
                 if a.split(":")[0] in names else a for a in args)
    media = tmp_path / "m"
    out = run_abr("encode", str(src), "--title", "x", "--media", str(media), *args)
    assert out.returncode == 1 and words in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not media.exists() or not list(media.iterdir())


def test_bitmap_subtitles_are_reported_not_dropped_silently():
    info = SourceInfo("/s.mkv", 320, 180, 25.0, 2.0, "h264", False, False, subtitle_tracks=(
        SubtitleTrack(0, "hdmv_pgs_subtitle", False, "eng", None, False, False),
        SubtitleTrack(1, "subrip", True, "fre", None, False, False)))
    subs, notes = plan_subtitles(info)
    assert [s.id for s in subs] == ["sub-fr"]
    assert notes == ("subtitle stream 0 (hdmv_pgs_subtitle, eng) is bitmap subtitles, which cannot "
                     "become WebVTT text: not carried",)
