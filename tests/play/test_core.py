"""The real player's pure parts: manifests, CMCD, shaping (no sockets)."""

from urllib.parse import unquote

import pytest

from player_sim.errors import PlayerError
from player_sim.link import Link
from player_sim.player import cmcd_query
from player_sim.presentation import manifest_kind, parse_dash, parse_hls_master, parse_hls_media
from player_sim.shaping import Shaper
from player_sim.traces import Trace

BASE = "http://edge/media/tiny/"


def versioned(tiny_title) -> str:
    """BASE and the title's version folder (renditions live in TITLE/<version>/<rid>/)."""
    import json

    return BASE + json.loads((tiny_title.path / "title.json").read_text())["version"] + "/"


def test_hls_master_and_media_playlists_of_an_encoded_title(tiny_title):
    text = (tiny_title.path / "master.m3u8").read_text()
    assert manifest_kind(BASE + "master.m3u8", text) == "hls"
    variants, audio = parse_hls_master(text, BASE + "master.m3u8")
    vb = versioned(tiny_title)
    assert sorted(v.uri for v in variants) == [vb + "240p/index.m3u8", vb + "360p/index.m3u8"]
    assert audio == vb + "audio/index.m3u8"
    assert all(v.average_bps and v.average_bps < v.bandwidth_bps for v in variants)
    local = tiny_title.path / vb[len(BASE):] / "360p/index.m3u8"
    init, segs, durs = parse_hls_media(local.read_text(), vb + "360p/index.m3u8")
    assert init == vb + "360p/init.mp4"
    assert segs == [vb + f"360p/seg-0000{i}.m4s" for i in range(1, 5)]
    assert durs == [2.0] * 4


def test_dash_mpd_of_an_encoded_title(tiny_title):
    text = (tiny_title.path / "manifest.mpd").read_text()
    pres = parse_dash(text, BASE + "manifest.mpd")
    assert [t.id for t in pres.video] == ["240p", "360p"]
    vb = versioned(tiny_title)
    assert pres.video[1].init_url == vb + "360p/init.mp4"
    assert list(pres.video[1].segment_urls) == [vb + f"360p/seg-0000{i}.m4s" for i in range(1, 5)]
    assert pres.audio is not None and pres.audio.segment_urls[0] == vb + "audio/seg-00001.m4s"
    assert pres.segment_s == 2.0


def test_dash_fixed_duration_template():
    mpd = """<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static"
      mediaPresentationDuration="PT9S"><Period><AdaptationSet contentType="video">
      <SegmentTemplate timescale="1000" duration="4000" startNumber="0" media="v/$Bandwidth$/$Number%03d$.m4s"
       initialization="v/$Bandwidth$/init.mp4"/>
      <Representation id="a" bandwidth="500000" width="640" height="360"/></AdaptationSet></Period></MPD>"""
    pres = parse_dash(mpd, "http://x/m.mpd")
    t = pres.video[0]
    assert t.segment_urls == ("http://x/v/500000/000.m4s", "http://x/v/500000/001.m4s", "http://x/v/500000/002.m4s")
    assert t.durations_s == (4.0, 4.0, 1.0) and t.init_url == "http://x/v/500000/init.mp4"


@pytest.mark.parametrize(
    "text, words",
    [
        ("hello", "neither an HLS playlist nor a DASH MPD"),
        ("#EXTM3U\n#EXTINF:4,\nseg.m4s\n#EXT-X-ENDLIST\n", "media playlist; give the master"),
        ("#EXTM3U\n#EXT-X-STREAM-INF:RESOLUTION=2x2\nv.m3u8\n", "lacks BANDWIDTH"),
        ("<MPD><Period></Period></MPD>", "no video representation"),
        ("<MPD xmlns='urn:mpeg:dash:schema:mpd:2011'><Period", "malformed"),
    ],
)
def test_malformed_manifests(text, words):
    url = "http://x/m"
    with pytest.raises(PlayerError, match=words):
        if manifest_kind(url, text) == "hls":
            parse_hls_master(text, url)
        else:
            parse_dash(text, url)


def test_live_playlists_are_refused():
    with pytest.raises(PlayerError, match="live"):
        parse_hls_media("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.m4s\n", "http://x/a.m3u8")


def test_cmcd_is_cta5004_shaped():
    q = cmcd_query({"sid": "s1", "br": 600, "bl": 2100, "ot": "v", "nor": "seg-00003.m4s", "su": True})
    assert q.startswith("CMCD=")
    assert unquote(q[5:]) == 'bl=2100,br=600,nor="seg-00003.m4s",ot=v,sid="s1",su'


def _const(bps: float, seconds: float = 100.0) -> Link:
    return Link(Trace("c", 0.0, (seconds,), (bps,), (0.0,)))


def test_shaper_delivers_at_the_trace_rate_and_loses_idle_time():
    s = Shaper(_const(8_000_000))  # 1 MB/s
    assert s.take(0.0, 500_000) == pytest.approx(0.5)
    assert s.take(0.1, 500_000) == pytest.approx(1.0)  # queued behind the first half megabyte
    assert s.take(3.0, 1_000_000) == pytest.approx(4.0)  # idle time gives no burst credit
    assert s.allowed_bytes(3.0, 4.0) == pytest.approx(1_000_000)


def test_shaper_follows_rate_changes():
    link = Link(Trace("step", 0.0, (1.0, 10.0), (8_000_000, 800_000), (0.0, 0.0)))
    s = Shaper(link)
    # 1 MB in the first second, then 100 KB/s: 1.2 MB arrive at t = 3 s.
    assert s.take(0.0, 1_200_000) == pytest.approx(3.0)


def test_an_hls_playlist_over_the_segment_bound_is_refused_in_one_sentence():
    from player_sim.presentation import MAX_SEGMENTS_PER_TRACK

    n = MAX_SEGMENTS_PER_TRACK + 1
    text = ("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n"
            + "".join(f"#EXTINF:2.0,\ns{i}.m4s\n" for i in range(n)) + "#EXT-X-ENDLIST\n")
    with pytest.raises(PlayerError, match=f"has {n} segments, more than the player's bound"):
        parse_hls_media(text, BASE + "v/360p/index.m3u8")
