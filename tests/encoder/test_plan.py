from fractions import Fraction

import pytest

from encoder.errors import LadderError
from encoder.ladder import Rendition
from encoder.plan import CODECS, EncodePlan, build_args, check_codec, output_fps

PLAN = EncodePlan(
    source="/in/src.mp4",
    renditions=(Rendition("240p", 426, 240, 300_000, 330_000, 660_000),
                Rendition("360p", 640, 360, 600_000, 660_000, 1_320_000)),
    codec="h264",
    fps=Fraction(30),
    segment_s=2.0,
    audio=True,
    duration_s=8.0,
)


def test_one_process_decodes_once_and_splits_into_every_rung():
    args = build_args(PLAN, "/out/manifest.mpd")
    assert args[:4] == [
        "-i", "/in/src.mp4", "-filter_complex",
        "[0:v:0]fps=fps=30[s0];[s0]split=2[s1][s2];[s1]scale=426:240[s3];[s2]scale=640:360[s4]",
    ]
    assert args.count("-i") == 1
    assert args[4:10] == ["-map", "[s3]", "-map", "[s4]", "-map", "0:a:0"]
    assert args[-1] == "/out/manifest.mpd"


def test_keyframes_aligned_at_segment_boundaries_and_capped_vbr():
    args = build_args(PLAN, "/out/manifest.mpd")
    opt = dict(zip(args[10:-1:2], args[11:-1:2], strict=True))
    assert opt["-g"] == opt["-keyint_min"] == "60"
    assert opt["-sc_threshold"] == "0"
    assert opt["-force_key_frames"] == "expr:gte(t,n_forced*2)"
    assert (opt["-b:v:0"], opt["-maxrate:v:0"], opt["-bufsize:v:0"]) == ("300000", "330000", "660000")
    assert (opt["-b:v:1"], opt["-maxrate:v:1"], opt["-bufsize:v:1"]) == ("600000", "660000", "1320000")
    assert opt["-f"] == "dash" and opt["-seg_duration"] == "2"
    assert opt["-format_options"] == "movflags=+cmaf"
    assert opt["-c:a"] == "aac" and opt["-adaptation_sets"] == "id=0,streams=v id=1,streams=a"


def test_video_only_plan_maps_no_audio():
    from dataclasses import replace

    args = build_args(replace(PLAN, audio=False), "/out/manifest.mpd")
    assert "0:a:0" not in args and "-c:a" not in args
    assert "id=0,streams=v" in args


def test_output_fps_is_exact_and_capped():
    assert output_fps(29.97) == Fraction(30000, 1001)
    assert output_fps(25.0) == Fraction(25)
    assert output_fps(120.0) == Fraction(60)


def test_unknown_codec():
    with pytest.raises(LadderError, match="unknown codec 'h266'"):
        check_codec("h266")
    with pytest.raises(LadderError, match="no libsvtav1 encoder"):
        check_codec("av1", frozenset({"libx264"}))


@pytest.mark.parametrize("codec", ["h264", "hevc", "vp9", "av1"])
def test_every_codec_is_written_as_cmaf_fmp4_not_webm(codec):
    from dataclasses import replace

    args = build_args(replace(PLAN, codec=codec), "/out/manifest.mpd")
    opt = dict(zip(args[10:-1:2], args[11:-1:2], strict=True))
    assert (opt["-f"], opt["-dash_segment_type"], opt["-format_options"]) == ("dash", "mp4", "movflags=+cmaf")
    assert opt["-c:v"] == CODECS[codec][0]
