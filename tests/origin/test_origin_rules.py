"""The pure rules: ranges, preconditions (RFC 9110 §13, §14), media paths and types, catalog."""

from __future__ import annotations

import pytest

from origin import catalog, media
from origin.http_rules import UNSATISFIABLE, ByteRange, Decision, FileFacts, decide, parse_range

FACTS = FileFacts(size_bytes=1000, mtime_ns=1_700_000_000_600_000_000)  # mtime x.6 s


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=900-", ByteRange(900, 999)),
        ("bytes=-100", ByteRange(900, 999)),
        ("bytes=-5000", ByteRange(0, 999)),  # suffix longer than the file: whole file
        ("bytes=990-5000", ByteRange(990, 999)),  # last-pos clipped
        ("BYTES = 0-0", ByteRange(0, 0)),
        ("bytes=0-99, 100-199", ByteRange(0, 199)),  # adjacent: coalesced
        ("bytes=50-150,0-99", ByteRange(0, 150)),  # overlapping: coalesced
        ("bytes=0-9,5000-6000", ByteRange(0, 9)),  # only one satisfiable member
        ("bytes=0-9,20-29", None),  # disjoint: whole file (no multipart/byteranges)
        ("bytes=1000-", UNSATISFIABLE),
        ("bytes=-0", UNSATISFIABLE),
        ("bytes=2000-3000,1500-", UNSATISFIABLE),
        ("bytes=5-2", None),  # invalid spec: header ignored
        ("bytes=-", None),
        ("bytes=abc", None),
        ("items=0-5", None),
        ("bytes", None),
    ],
)
def test_parse_range(value: str, expected: object) -> None:
    assert parse_range(value, 1000) == expected


def test_empty_file_has_no_satisfiable_range() -> None:
    assert parse_range("bytes=0-", 0) is UNSATISFIABLE
    assert parse_range("bytes=-10", 0) is UNSATISFIABLE


def test_validators() -> None:
    assert FACTS.etag == f'"{1_700_000_000_600_000_000:x}-3e8"'
    assert FACTS.last_modified == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert FACTS.last_modified_s == 1_700_000_000


def test_plain_get_and_range() -> None:
    assert decide("GET", {}, FACTS) == Decision(200)
    assert decide("GET", {"range": "bytes=10-19"}, FACTS) == Decision(206, ByteRange(10, 19))
    assert decide("GET", {"range": "bytes=5000-"}, FACTS) == Decision(416)
    # RFC 9110 §14.2: Range is defined for GET only
    assert decide("HEAD", {"range": "bytes=10-19"}, FACTS) == Decision(200)


def test_if_none_match_weak_comparison_and_star() -> None:
    assert decide("GET", {"if-none-match": FACTS.etag}, FACTS).status == 304
    assert decide("GET", {"if-none-match": f'"x", W/{FACTS.etag}'}, FACTS).status == 304
    assert decide("GET", {"if-none-match": "*"}, FACTS).status == 304
    assert decide("GET", {"if-none-match": '"other"'}, FACTS).status == 200


def test_if_modified_since_uses_whole_seconds() -> None:
    # The client echoes Last-Modified (whole seconds) while the mtime is x.6 s: still 304.
    assert decide("GET", {"if-modified-since": FACTS.last_modified}, FACTS).status == 304
    earlier = "Tue, 14 Nov 2023 22:13:19 GMT"
    assert decide("GET", {"if-modified-since": earlier}, FACTS).status == 200
    assert decide("GET", {"if-modified-since": "not a date"}, FACTS).status == 200


def test_if_none_match_takes_precedence_over_if_modified_since() -> None:
    headers = {"if-none-match": '"other"', "if-modified-since": FACTS.last_modified}
    assert decide("GET", headers, FACTS).status == 200  # RFC 9110 §13.1.3


def test_if_match_and_if_unmodified_since() -> None:
    assert decide("GET", {"if-match": '"other"'}, FACTS).status == 412
    assert decide("GET", {"if-match": f"W/{FACTS.etag}"}, FACTS).status == 412  # strong only
    assert decide("GET", {"if-match": FACTS.etag}, FACTS).status == 200
    assert decide("GET", {"if-match": "*"}, FACTS).status == 200
    earlier = "Tue, 14 Nov 2023 22:13:19 GMT"
    assert decide("GET", {"if-unmodified-since": earlier}, FACTS).status == 412
    assert decide("GET", {"if-unmodified-since": FACTS.last_modified}, FACTS).status == 200


def test_if_range() -> None:
    rng = {"range": "bytes=0-9"}
    assert decide("GET", {**rng, "if-range": FACTS.etag}, FACTS).status == 206
    assert decide("GET", {**rng, "if-range": '"stale"'}, FACTS).status == 200
    assert decide("GET", {**rng, "if-range": f"W/{FACTS.etag}"}, FACTS).status == 200
    assert decide("GET", {**rng, "if-range": FACTS.last_modified}, FACTS).status == 206
    later = "Tue, 14 Nov 2023 22:13:21 GMT"  # must match exactly (§13.1.5)
    assert decide("GET", {**rng, "if-range": later}, FACTS).status == 200


@pytest.mark.parametrize("path", ["", "a//b", "../x", "a/../../x", "./a", "a/.", "a\x00b", "a\\b"])
def test_split_media_path_rejects(path: str) -> None:
    with pytest.raises((media.BadPath, LookupError)):
        media.split_media_path(path)


def test_split_media_path_hidden_is_not_found_not_malformed() -> None:
    with pytest.raises(LookupError):
        media.split_media_path(".tmp-1/master.m3u8")
    assert media.split_media_path("360p/seg-00001.m4s") == ("360p", "seg-00001.m4s")


def test_media_kinds() -> None:
    kind = media.media_kind(("master.m3u8",))
    assert kind == media.MediaKind("application/vnd.apple.mpegurl", "public, max-age=2")
    assert media.media_kind(("manifest.mpd",)).content_type == "application/dash+xml"  # type: ignore[union-attr]
    seg = media.media_kind(("720p", "seg-00001.m4s"))
    assert seg == media.MediaKind("video/mp4", "public, max-age=31536000, immutable")
    assert media.media_kind(("audio", "init.mp4")).content_type == "audio/mp4"  # type: ignore[union-attr]
    assert media.media_kind(("notes.txt",)) is None
    assert media.media_kind((".m3u8",)) is None


def test_title_names() -> None:
    assert media.is_title_name("big-buck_bunny.v2")
    for bad in (".tmp-abc", "-x", "a/b", "", "x" * 129, "é"):
        assert not media.is_title_name(bad)


def test_summarize_copies_what_a_catalog_needs() -> None:
    meta = {
        "duration_s": 12.0,
        "manifests": {"hls": "master.m3u8", "dash": "manifest.mpd"},
        "renditions": [
            {
                "id": "360p",
                "kind": "video",
                "width": 640,
                "height": 360,
                "codecs": "avc1.64001e",
                "target_bitrate_bps": 600000,
                "playlist": "360p/index.m3u8",
                "segments": [{}, {}],
                "quality": {"vmaf": 90.5},
            },
            {"id": "audio", "kind": "audio", "codecs": "mp4a.40.2", "average_bitrate_bps": 127000},
        ],
    }
    entry = catalog.summarize(meta, "show")
    assert entry["manifests"] == {
        "hls": "/media/show/master.m3u8",
        "dash": "/media/show/manifest.mpd",
    }
    video, audio = entry["renditions"]
    assert video["resolution"] == "640x360" and video["bitrate_bps"] == 600000
    assert video["quality"] == {"vmaf": 90.5} and video["segment_count"] == 2
    assert audio["bitrate_bps"] == 127000 and "quality" not in audio
    assert entry["player"]["dash"] == "/play/show?player=dash"
