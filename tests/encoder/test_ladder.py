import json

import pytest

from encoder.errors import LadderError
from encoder.ladder import DEFAULT_LADDER, Rung, fit_ladder, load_ladder, parse_ladder


def test_default_ladder_is_filtered_to_the_source_and_never_upscales():
    out = fit_ladder(DEFAULT_LADDER, 1280, 720)
    assert [(r.id, r.width, r.height) for r in out] == [
        ("240p", 426, 240), ("360p", 640, 360), ("480p", 854, 480), ("720p", 1280, 720)
    ]
    assert [r.bitrate_bps for r in out] == [300_000, 600_000, 1_200_000, 2_800_000]


def test_capped_vbr_maxrate_and_bufsize():
    r = fit_ladder((Rung(360, 600_000),), 640, 360)[0]
    assert (r.maxrate_bps, r.bufsize_bits) == (660_000, 1_320_000)


def test_odd_source_dimensions_give_even_sizes_with_the_aspect_kept():
    out = fit_ladder(DEFAULT_LADDER, 853, 480)
    assert [(r.width, r.height) for r in out] == [(426, 240), (640, 360), (852, 480)]
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in out)


def test_portrait_source_uses_the_short_side():
    out = fit_ladder(DEFAULT_LADDER, 720, 1280)
    assert [(r.id, r.width, r.height) for r in out][-1] == ("720p", 720, 1280)
    assert out[0].width == 240 and out[0].height == 426


def test_source_smaller_than_every_rung_gets_one_rung_at_its_own_size():
    out = fit_ladder(DEFAULT_LADDER, 320, 180)
    assert [(r.width, r.height, r.bitrate_bps) for r in out] == [(320, 180, 300_000)]


def test_duplicate_heights_get_distinct_ids():
    rungs = parse_ladder([{"height": 360, "bitrate_kbps": 400}, {"height": 360, "bitrate_kbps": 800}])
    assert [r.id for r in fit_ladder(rungs, 640, 360)] == ["360p", "360p-800k"]


def test_ladder_file_round_trip(tmp_path):
    f = tmp_path / "ladder.json"
    f.write_text(json.dumps({"rungs": [{"height": 240, "bitrate_kbps": 250, "name": "low"},
                                       {"height": 360, "bitrate_bps": 700000, "maxrate_kbps": 900}]}))
    assert load_ladder(str(f)) == (Rung(240, 250_000, None, "low"), Rung(360, 700_000, 900_000, None))
    assert load_ladder("default") == DEFAULT_LADDER


@pytest.mark.parametrize(
    "doc, words",
    [
        ("not json", "not valid JSON"),
        ("[]", "non-empty list"),
        ('{"rungz": []}', "unknown key"),
        ('[{"bitrate_kbps": 300}]', "'height'"),
        ('[{"height": 360}]', "bitrate_kbps"),
        ('[{"height": 360, "bitrate_kbps": "fast"}]', "number"),
        ('[{"height": 360, "bitrate_kbps": 300, "colour": 1}]', "unknown key"),
        ('[{"height": 360, "bitrate_kbps": 300, "maxrate_kbps": 200}]', "below"),
        ('[{"height": 360, "bitrate_kbps": 300, "name": "../x"}]', "name"),
        ('[{"height": 360, "bitrate_kbps": 300, "name": "audio"}]', "reserved"),
    ],
)
def test_malformed_ladder_files_are_rejected_with_a_reason(tmp_path, doc, words):
    f = tmp_path / "ladder.json"
    f.write_text(doc)
    with pytest.raises(LadderError, match=words):
        load_ladder(str(f))


def test_missing_ladder_file():
    with pytest.raises(LadderError, match="does not exist"):
        load_ladder("/nonexistent/ladder.json")


def test_a_ladder_has_at_most_twelve_rungs():
    rungs = [{"height": 100 + i, "bitrate_kbps": 100 + i} for i in range(13)]
    with pytest.raises(LadderError, match="13 rungs is too many"):
        parse_ladder(rungs)
    assert len(parse_ladder(rungs[:12])) == 12


def test_rung_name_with_a_trailing_newline_is_refused():
    with pytest.raises(LadderError, match="'name'"):
        parse_ladder([{"height": 240, "bitrate_kbps": 300, "name": "hd\n"}])
