"""Headers of the origin, checked with real HTTP clients against a real server on 127.0.0.1."""

from __future__ import annotations

import os
from email.utils import formatdate

import httpx
from origin_test_helpers import raw_request

from origin.testing import running_origin

SEG = "/media/show/360p/seg-00001.m4s"


def test_catalog_lists_titles_with_renditions_and_urls(origin_url: str, hand_title) -> None:
    body = httpx.get(origin_url + "/titles").json()
    assert [t["name"] for t in body["titles"]] == ["show"]
    show = body["titles"][0]
    assert show["duration_s"] == 8.0
    assert show["manifests"]["hls"] == "/media/show/master.m3u8"
    video = show["renditions"][0]
    assert (video["resolution"], video["bitrate_bps"], video["codecs"]) == (
        "640x360",
        580000,
        "avc1.64001e",
    )
    assert video["quality"] == {"vmaf": 91.2}
    one = httpx.get(origin_url + "/titles/show")
    assert one.status_code == 200 and one.json() == show
    assert httpx.get(origin_url + "/titles/nope").status_code == 404
    # every URL in the catalog works
    for url in show["manifests"].values():
        assert httpx.get(origin_url + url).status_code == 200


def test_media_types_and_cache_control(origin_url: str) -> None:
    expected = {
        "/media/show/master.m3u8": ("application/vnd.apple.mpegurl", "public, max-age=2"),
        "/media/show/360p/index.m3u8": ("application/vnd.apple.mpegurl", "public, max-age=2"),
        "/media/show/manifest.mpd": ("application/dash+xml", "public, max-age=2"),
        "/media/show/title.json": ("application/json", "public, max-age=2"),
        "/media/show/360p/init.mp4": ("video/mp4", "public, max-age=31536000, immutable"),
        SEG: ("video/mp4", "public, max-age=31536000, immutable"),
        "/media/show/360p/seg-00002.m4s": ("video/mp4", "public, max-age=31536000, immutable"),
        "/media/show/audio/init.mp4": ("audio/mp4", "public, max-age=31536000, immutable"),
        "/media/show/audio/seg-00001.m4s": ("audio/mp4", "public, max-age=31536000, immutable"),
    }
    with httpx.Client(base_url=origin_url) as client:
        for path, (content_type, cache_control) in expected.items():
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].split(";")[0] == content_type, path
            assert response.headers["cache-control"] == cache_control, path
            assert response.headers["etag"].startswith('"')
            assert response.headers["last-modified"].endswith("GMT")
            assert response.headers["accept-ranges"] == "bytes"


def test_large_and_small_bodies_are_exact(origin_url: str, hand_title) -> None:
    big = httpx.get(origin_url + SEG)
    assert big.content == hand_title.big
    assert int(big.headers["content-length"]) == len(hand_title.big)
    small = httpx.get(origin_url + "/media/show/360p/seg-00002.m4s")
    assert small.content == (hand_title.path / "360p" / "seg-00002.m4s").read_bytes()


def test_byte_ranges_on_sendfile_and_in_memory_paths(origin_url: str, hand_title) -> None:
    small_bytes = (hand_title.path / "master.m3u8").read_bytes()
    for path, data in ((SEG, hand_title.big), ("/media/show/master.m3u8", small_bytes)):
        size = len(data)
        with httpx.Client(base_url=origin_url) as client:
            r = client.get(path, headers={"Range": "bytes=10-19"})
            assert r.status_code == 206 and r.content == data[10:20]
            assert r.headers["content-range"] == f"bytes 10-19/{size}"
            assert r.headers["content-length"] == "10"
            r = client.get(path, headers={"Range": "bytes=-7"})
            assert r.status_code == 206 and r.content == data[-7:]
            r = client.get(path, headers={"Range": "bytes=5-"})
            assert r.status_code == 206 and r.content == data[5:]
            r = client.get(path, headers={"Range": "bytes=0-4,5-9"})  # coalesced into one
            assert r.status_code == 206 and r.content == data[:10]
            # disjoint ranges are answered with the whole file (documented choice)
            r = client.get(path, headers={"Range": "bytes=0-1,5-6"})
            assert r.status_code == 200 and r.content == data
            r = client.get(path, headers={"Range": f"bytes={size}-"})
            assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
            r = client.get(path, headers={"Range": "bytes=9-3"})  # invalid: ignored
            assert r.status_code == 200 and r.content == data


def test_head_has_headers_but_no_body(origin_url: str, hand_title) -> None:
    r = httpx.head(origin_url + SEG)
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == str(len(hand_title.big))
    assert r.headers["content-type"] == "video/mp4"
    assert r.headers["etag"] == httpx.get(origin_url + SEG).headers["etag"]
    small = httpx.head(origin_url + "/media/show/master.m3u8")
    size = (hand_title.path / "master.m3u8").stat().st_size
    assert small.status_code == 200 and small.content == b""
    assert small.headers["content-length"] == str(size)
    assert small.headers["content-type"] == "application/vnd.apple.mpegurl"
    ranged = httpx.head(origin_url + SEG, headers={"Range": "bytes=0-9"})  # Range: GET only
    assert ranged.status_code == 200 and ranged.headers["content-length"] == str(
        len(hand_title.big)
    )


def test_conditional_requests(origin_url: str, hand_title) -> None:
    # mtime with a fraction of a second: If-Modified-Since echoing Last-Modified must be 304
    os.utime(hand_title.path / "360p" / "seg-00001.m4s", ns=(1_700_000_000_700_000_000,) * 2)
    with httpx.Client(base_url=origin_url) as client:
        first = client.get(SEG)
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        assert modified == formatdate(1_700_000_000, usegmt=True)
        r = client.get(SEG, headers={"If-None-Match": etag})
        assert r.status_code == 304 and r.content == b""
        assert r.headers["etag"] == etag and "cache-control" in r.headers
        assert client.get(SEG, headers={"If-None-Match": '"other"'}).status_code == 200
        assert client.get(SEG, headers={"If-Modified-Since": modified}).status_code == 304
        before = formatdate(1_699_999_999, usegmt=True)
        assert client.get(SEG, headers={"If-Modified-Since": before}).status_code == 200
        r = client.get(SEG, headers={"Range": "bytes=0-9", "If-Range": etag})
        assert r.status_code == 206
        r = client.get(SEG, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
        assert r.status_code == 200 and r.content == hand_title.big
        assert client.get(SEG, headers={"If-Match": '"old"'}).status_code == 412
        r = client.get("/media/show/master.m3u8")
        assert (
            client.get(
                "/media/show/master.m3u8", headers={"If-None-Match": r.headers["etag"]}
            ).status_code
            == 304
        )


def test_cors_for_browser_players(origin_url: str) -> None:
    r = httpx.get(origin_url + SEG, headers={"Origin": "http://example.test", "Range": "bytes=0-1"})
    assert r.headers["access-control-allow-origin"] == "*"
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert {"content-length", "content-range"} <= exposed
    pre = httpx.options(
        origin_url + SEG,
        headers={
            "Origin": "http://example.test",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
    )
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "*"
    assert "GET" in pre.headers["access-control-allow-methods"]
    assert "range" in pre.headers["access-control-allow-headers"].lower()


def test_health_and_metrics(origin_url: str) -> None:
    assert httpx.get(origin_url + "/healthz").json() == {"status": "ok"}
    httpx.get(origin_url + SEG)
    httpx.head(origin_url + SEG)
    text = httpx.get(origin_url + "/metrics").text
    assert 'abr_origin_response_bytes_total{route="media"} 299999.0' in text  # HEAD adds 0
    httpx.get(origin_url + "/media/show/missing.m4s")
    text = httpx.get(origin_url + "/metrics").text
    assert 'abr_origin_requests_total{method="GET",route="media",status="200"} 1.0' in text
    assert 'abr_origin_requests_total{method="HEAD",route="media",status="200"} 1.0' in text
    assert 'abr_origin_requests_total{method="GET",route="media",status="404"} 1.0' in text
    assert "abr_origin_request_duration_seconds_bucket" in text


def test_two_apps_in_one_process_have_separate_metrics(hand_title) -> None:
    with running_origin(hand_title.media_dir) as one, running_origin(hand_title.media_dir) as two:
        httpx.get(one + "/healthz")
        assert 'route="healthz"' in httpx.get(one + "/metrics").text
        assert 'route="healthz"' not in httpx.get(two + "/metrics").text


def test_raw_request_helper_sends_paths_verbatim(origin_url: str) -> None:
    status, headers, body = raw_request(origin_url, "GET", "/media/show/master.m3u8")
    assert status == 200 and body.startswith(b"#EXTM3U")
