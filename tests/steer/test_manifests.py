"""Steered manifests and steering manifests follow the specs: Apple's HLS Content Steering
(EXT-X-CONTENT-STEERING, PATHWAY-ID, PATHWAY-CLONES) and DASH-IF / ETSI TS 103 998
(ContentSteering, BaseURL@serviceLocation), read back with the parsers players use."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import m3u8
import pytest

from steer.errors import SteerError
from steer.manifests import (
    Pathway,
    attrs,
    clone_for,
    parse_pathways,
    parse_throughput,
    steer_hls_master,
    steer_mpd,
    steering_manifest,
)
from tests.conftest import TinyTitle

A = Pathway("edge-a", "http://127.0.0.1:8081")
B = Pathway("edge-b", "http://127.0.0.1:8082")
SERVER = "http://127.0.0.1:8090/steering/hls/tiny?session=abc"
NS = "{urn:mpeg:dash:schema:mpd:2011}"


def test_hls_master_has_one_pathway_per_edge(tiny_title: TinyTitle) -> None:
    text = (tiny_title.path / "master.m3u8").read_text()
    out = steer_hls_master(text, "/media/tiny/master.m3u8", [A, B], SERVER, "edge-a")
    tag = next(ln for ln in out.splitlines() if ln.startswith("#EXT-X-CONTENT-STEERING:"))
    assert dict(attrs(tag.split(":", 1)[1])) == {"SERVER-URI": f'"{SERVER}"', "PATHWAY-ID": '"edge-a"'}
    pl = m3u8.loads(out)
    n = len(m3u8.loads(text).playlists)
    assert len(pl.playlists) == 2 * n
    for p in pl.playlists:
        pathway = A if 'PATHWAY-ID="edge-a"' in _inf_line(out, p.uri) else B
        assert p.uri.startswith(pathway.base + "/media/tiny/")      # absolute, into its edge
        assert p.stream_info.audio == f"audio-{pathway.id}"           # audio moves with video
    groups = {m.group_id: m.uri for m in pl.media}
    assert groups == {"audio-edge-a": A.base + "/media/tiny/" + m3u8.loads(text).media[0].uri,
                      "audio-edge-b": B.base + "/media/tiny/" + m3u8.loads(text).media[0].uri}
    # the same STABLE-VARIANT-ID on each pathway (hls.js compares them when it moves)
    stable = [dict(attrs(ln.split(":", 1)[1]))["STABLE-VARIANT-ID"]
              for ln in out.splitlines() if ln.startswith("#EXT-X-STREAM-INF")]
    assert stable[:n] == stable[n:]


def _inf_line(text: str, uri: str) -> str:
    lines = text.splitlines()
    return lines[lines.index(uri) - 1]


def test_hls_refuses_a_media_playlist(tiny_title: TinyTitle) -> None:
    media = next(tiny_title.path.glob("v*/360p/index.m3u8")).read_text()
    with pytest.raises(SteerError, match="media playlist"):
        steer_hls_master(media, "/media/tiny/x.m3u8", [A], SERVER, "edge-a")


def test_mpd_has_base_urls_and_content_steering(tiny_title: TinyTitle) -> None:
    text = (tiny_title.path / "manifest.mpd").read_text()
    server = "http://127.0.0.1:8090/steering/dash/tiny?session=abc"
    root = ET.fromstring(steer_mpd(text, "/media/tiny/manifest.mpd", [A, B], server, "edge-b"))
    bases = [(b.get("serviceLocation"), b.text) for b in root.findall(f"{NS}BaseURL")]
    assert bases == [("edge-a", A.base + "/media/tiny/"), ("edge-b", B.base + "/media/tiny/")]
    cs = root.find(f"{NS}ContentSteering")
    assert cs is not None and cs.text == server
    assert cs.get("defaultServiceLocation") == "edge-b" and cs.get("queryBeforeStart") == "true"
    # still one Period with its representations: what players parse
    from mpegdash.parser import MPEGDASHParser
    mpd = MPEGDASHParser.parse(steer_mpd(text, "/media/tiny/manifest.mpd", [A], server, "edge-a"))
    assert [b.base_url_value for b in mpd.base_urls] == [A.base + "/media/tiny/"]


def test_steering_manifest_fields() -> None:
    hls = steering_manifest("hls", ["edge-b", "edge-a"], 10, "http://s/steering/hls/t?session=1")
    assert json.loads(json.dumps(hls)) == {"VERSION": 1, "TTL": 10,
                                           "RELOAD-URI": "http://s/steering/hls/t?session=1",
                                           "PATHWAY-PRIORITY": ["edge-b", "edge-a"]}
    dash = steering_manifest("dash", ["edge-a"], 5, "r", [{"BASE-ID": "edge-a", "ID": "edge-c",
                                                           "URI-REPLACEMENT": {"HOST": "h:1"}}])
    assert dash["SERVICE-LOCATION-PRIORITY"] == dash["PATHWAY-PRIORITY"] == ["edge-a"]
    assert dash["PATHWAY-CLONES"][0]["URI-REPLACEMENT"] == {"HOST": "h:1"}


def test_pathway_clones_say_only_what_uri_replacement_can() -> None:
    same_port = Pathway("edge-c", "http://127.0.0.3:8081")
    assert clone_for([A, B], same_port, hls=True) == {
        "BASE-ID": "edge-a", "ID": "edge-c", "URI-REPLACEMENT": {"HOST": "127.0.0.3"}}
    other_port = Pathway("edge-d", "http://127.0.0.1:9000")
    assert clone_for([A, B], other_port, hls=True) is None          # HOST is a host name only
    assert clone_for([A], other_port, hls=False) == {               # dash.js takes host:port
        "BASE-ID": "edge-a", "ID": "edge-d", "URI-REPLACEMENT": {"HOST": "127.0.0.1:9000"}}


def test_query_parameters() -> None:
    assert parse_pathways("hls", "edge-a") == ["edge-a"]
    assert parse_pathways("dash", '"edge-b,edge-a"') == ["edge-b", "edge-a"]
    assert parse_throughput("dash", "5000000,1200") == [5e6, 1200.0]
    assert parse_throughput("hls", None) == []
    with pytest.raises(SteerError, match="_HLS_throughput"):
        parse_throughput("hls", "fast")
    with pytest.raises(SteerError, match="_DASH_pathway"):
        parse_pathways("dash", '"a b"')
