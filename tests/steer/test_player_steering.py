"""The headless player's steering state (player_sim/steering.py), on the steering service's
own manifests: which pathway it starts on, how URLs move, clones, the penalty box."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from player_sim.errors import PlayerError
from player_sim.presentation import parse_dash, parse_hls_master
from player_sim.steering import PENALTY_S, adopt_dash, adopt_hls
from steer.manifests import Pathway, steer_hls_master, steer_mpd, steering_manifest
from tests.conftest import TinyTitle

A, B = Pathway("edge-a", "http://127.0.0.1:8081"), Pathway("edge-b", "http://127.0.0.1:8082")
S = "http://127.0.0.1:8090"


def _hls(tiny_title: TinyTitle, initial: str = "edge-b") -> tuple[object, str]:
    text = steer_hls_master((tiny_title.path / "master.m3u8").read_text(), "/media/tiny/master.m3u8",
                            [A, B], f"{S}/steering/hls/tiny?session=ab", initial)
    return adopt_hls(text, f"{S}/steered/media/tiny/master.m3u8")


def test_hls_starts_on_the_tagged_pathway_with_its_own_variants(tiny_title: TinyTitle) -> None:
    st, text = _hls(tiny_title)
    assert st is not None and st.initial == "edge-b" and st.kind == "hls"
    assert st.pathways == {"edge-a": A.base + "/", "edge-b": B.base + "/"}
    variants, audio = parse_hls_master(text, f"{S}/steered/media/tiny/master.m3u8")
    assert len(variants) == 2 and all(v.uri.startswith(B.base) for v in variants)
    assert audio is not None and audio.startswith(B.base)


def test_a_failure_moves_at_once_and_the_penalty_holds(tiny_title: TinyTitle) -> None:
    st, _ = _hls(tiny_title)
    seg = B.base + "/media/tiny/v1/240p/seg-00001.m4s"
    assert st.url(seg) == seg
    assert st.failed(seg, 10.0) and st.current == "edge-a"
    assert st.url(seg) == A.base + "/media/tiny/v1/240p/seg-00001.m4s"
    # the steering server still ranks edge-b first: penalised, it is skipped ...
    assert not st.apply(steering_manifest("hls", ["edge-b", "edge-a"], 4, "/steering/hls/tiny?session=ab"),
                        S + "/steering/hls/tiny", 20.0)
    assert st.current == "edge-a" and st.ttl_s == 4 and st.uri == S + "/steering/hls/tiny?session=ab"
    # ... until the penalty is over (hls.js: 300 s)
    assert st.apply(steering_manifest("hls", ["edge-b", "edge-a"], 4, "r"), S + "/", 10.0 + PENALTY_S + 1)
    assert st.current == "edge-b"


def test_steering_request_carries_pathway_and_throughput(tiny_title: TinyTitle) -> None:
    st, _ = _hls(tiny_title)
    q = parse_qs(urlsplit(st.request_uri(2_500_000.7)).query)
    assert q == {"session": ["ab"], "_HLS_pathway": ["edge-b"], "_HLS_throughput": ["2500000"]}


def test_clones_replace_the_host_name_for_hls_and_host_port_for_dash(tiny_title: TinyTitle) -> None:
    st, _ = _hls(tiny_title)
    doc = steering_manifest("hls", ["edge-c", "edge-b"], 4, "r",
                            [{"BASE-ID": "edge-a", "ID": "edge-c", "URI-REPLACEMENT": {"HOST": "127.0.0.3"}}])
    assert st.apply(doc, S + "/", 1.0) and st.current == "edge-c"
    assert st.pathways["edge-c"] == "http://127.0.0.3:8081/"              # the port stays
    mpd = steer_mpd((tiny_title.path / "manifest.mpd").read_text(), "/media/tiny/manifest.mpd", [A, B],
                    f"{S}/steering/dash/tiny?session=cd", "edge-a")
    dst, base = adopt_dash(mpd, f"{S}/steered/media/tiny/manifest.mpd")
    assert dst is not None and base == A.base + "/media/tiny/"
    q = parse_qs(urlsplit(dst.request_uri(1e6)).query)
    assert q["_DASH_pathway"] == ['"edge-a"'] and q["_DASH_throughput"] == ["1000000"]
    pres = parse_dash(mpd, base)
    assert all(u.startswith(base) for t in pres.video for u in t.segment_urls)
    assert dst.apply({"VERSION": 1, "TTL": 3, "SERVICE-LOCATION-PRIORITY": ["edge-d"],
                      "PATHWAY-CLONES": [{"BASE-ID": "edge-b", "ID": "edge-d",
                                          "URI-REPLACEMENT": {"HOST": "127.0.0.1:9000"}}]}, S + "/", 1.0)
    assert dst.url(pres.video[0].segment_urls[0]).startswith("http://127.0.0.1:9000/media/tiny/")


def test_a_manifest_without_steering_is_left_alone_and_bad_steering_is_refused(tiny_title: TinyTitle) -> None:
    text = (tiny_title.path / "master.m3u8").read_text()
    assert adopt_hls(text, S + "/m.m3u8") == (None, text)
    assert adopt_dash((tiny_title.path / "manifest.mpd").read_text(), S + "/m.mpd")[0] is None
    st, _ = _hls(tiny_title)
    with pytest.raises(PlayerError, match="VERSION 1"):
        st.apply({"VERSION": 2, "TTL": 1}, S, 0.0)
