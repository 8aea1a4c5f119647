"""A re-encoded title (``--force``) is a new version with segment URLs of its own: the
manifests reference only them, the old version's files are gone, and an edge that cached
the old segments serves the new version once its manifests revalidate (issue 10.12)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import m3u8

from encoder.encode import EncodeConfig, encode
from origin.testing import running_origin
from tests.edge.conftest import running_edge
from tests.encoder.conftest import lavfi


def _segment_urls(client: httpx.Client, base: str) -> list[str]:
    master = m3u8.loads(client.get(base + "master.m3u8").text, uri=base)
    media_url = master.playlists[0].absolute_uri
    media = m3u8.loads(client.get(media_url).text, uri=media_url)
    return [s.absolute_uri for s in media.segments]


def test_a_forced_re_encode_gets_new_segment_urls_and_the_old_ones_go(tmp_path: Path) -> None:
    media = tmp_path / "media"
    src_a = lavfi(tmp_path / "a.mp4", "testsrc2=size=160x90:rate=15", audio=False, seconds=2)
    src_b = lavfi(tmp_path / "b.mp4", "smptebars=size=160x90:rate=15", audio=False, seconds=2)
    cfg = {"title": "t", "media_dir": media, "segment_s": 1.0, "progress": "none"}
    first = encode(EncodeConfig(source=src_a, **cfg))
    with running_origin(media) as origin, \
            running_edge([origin], tmp_path / "cache", prefetch_k=0) as edge, \
            httpx.Client(timeout=10) as client:
        base = edge.http + "/media/t/"
        old = _segment_urls(client, base)
        old_body = client.get(old[0]).content  # now cached at the edge
        assert client.get(old[0]).headers["x-cache"] == "HIT"

        second = encode(EncodeConfig(source=src_b, force=True, **cfg))
        assert second["version"] != first["version"]
        assert not (media / "t" / first["version"]).exists()
        assert httpx.get(origin + "/media/t/" + old[0].split("/media/t/", 1)[1]).status_code == 404
        doc = json.loads((media / "t" / "title.json").read_text())
        for r in doc["renditions"]:
            assert r["init"].startswith(second["version"] + "/")
            assert all(s["uri"].startswith(second["version"] + "/") for s in r["segments"])
        mpd = (media / "t" / "manifest.mpd").read_text()
        assert first["version"] not in mpd and second["version"] in mpd

        time.sleep(2.2)  # the manifests' max-age at the origin (origin/media.py)
        new = _segment_urls(client, base)
        assert not set(new) & set(old)
        r = client.get(new[0])
        assert r.status_code == 200 and r.content != old_body
