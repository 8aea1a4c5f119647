"""The steering service with real processes: redis-server, an origin, edges heart-beating on
edge.health, `abr steer`; ffmpeg through the 302 router; a killed edge leaves the answers."""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from abrstack.bus import connect
from abrstack.events import EDGE_HEALTH, HEALTH_FIELDS
from steer.testing import LocalFleet, get_json


@pytest.fixture(scope="module")
def fleet(tiny_title: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    with LocalFleet(tiny_title.media_dir, tmp_path_factory.mktemp("fleet"), edges=2) as f:
        yield f


def test_edges_heart_beat_on_the_bus(fleet: LocalFleet) -> None:
    async def last() -> dict[str, Any]:
        client = connect(fleet.redis.url)
        try:
            entries = await client.xrevrange(EDGE_HEALTH, count=20)
        finally:
            await client.aclose()
        import json
        return {json.loads(f[b"e"])["data"]["edge"]: json.loads(f[b"e"])["data"] for _id, f in entries}

    urllib.request.urlopen(fleet.edges["edge-0"] + "/media/tiny/master.m3u8").read()
    time.sleep(1.2)
    beats = asyncio.run(last())
    assert set(beats) == {"edge-0", "edge-1"}
    for data in beats.values():
        assert set(HEALTH_FIELDS) <= set(data) and 0.5 < data["interval_s"] < 3
    snap = get_json(fleet.steer_url + "/edges")["edges"]
    assert all(e["up"] and e["heard_s_ago"] < 2.5 for e in snap.values())


def test_ffmpeg_reads_a_title_through_the_router(fleet: LocalFleet) -> None:
    from imageio_ffmpeg import get_ffmpeg_exe

    url = fleet.steer_url + "/media/tiny/master.m3u8"
    req = urllib.request.Request(url, method="HEAD")

    class NoFollow(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a: Any, **k: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoFollow)
    with pytest.raises(urllib.error.HTTPError) as e:
        opener.open(req, timeout=5)
    assert e.value.code == 302 and e.value.headers["Location"].split("/media/")[0] in fleet.edges.values()
    done = subprocess.run([get_ffmpeg_exe(), "-v", "error", "-i", url, "-map", "0:v:0", "-f", "null", "-"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sum(get_json(fleet.steer_url + "/edges")["edges"][n]["up"] for n in fleet.edges) == 2


def test_steered_master_and_steering_answer(fleet: LocalFleet) -> None:
    import m3u8

    text = urllib.request.urlopen(fleet.steer_url + "/steered/media/tiny/master.m3u8").read().decode()
    tag = next(ln for ln in text.splitlines() if ln.startswith("#EXT-X-CONTENT-STEERING"))
    server_uri = tag.split('SERVER-URI="')[1].split('"')[0]
    first = tag.split('PATHWAY-ID="')[1].split('"')[0]
    assert {p.uri.split("/media/")[0] for p in m3u8.loads(text).playlists} == set(fleet.edges.values())
    doc = get_json(server_uri + f"&_HLS_pathway={first}&_HLS_throughput=3000000")
    assert doc["VERSION"] == 1 and doc["TTL"] == fleet.ttl_s
    assert doc["PATHWAY-PRIORITY"][0] == first and sorted(doc["PATHWAY-PRIORITY"]) == sorted(fleet.edges)
    assert doc["RELOAD-URI"].startswith(fleet.steer_url + "/steering/hls/tiny?session=")
    bad = urllib.request.Request(server_uri + "&_HLS_throughput=fast")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(bad)
    assert e.value.code == 400 and b"_HLS_throughput" in e.value.read()


def test_killed_edge_leaves_the_steering_answers_within_seconds(
        tiny_title: Any, tmp_path: Path) -> None:
    with LocalFleet(tiny_title.media_dir, tmp_path, edges=2, health_timeout_s=2.0) as fleet:
        text = urllib.request.urlopen(fleet.steer_url + "/steered/media/tiny/manifest.mpd").read().decode()
        server_uri = text.split('queryBeforeStart="true">')[1].split("<")[0].replace("&amp;", "&")
        first = get_json(server_uri)["PATHWAY-PRIORITY"][0]
        fleet.kill(first)
        t0 = time.monotonic()
        while get_json(server_uri)["PATHWAY-PRIORITY"][0] == first:
            assert time.monotonic() - t0 < 5.0, "the killed edge is still steered to"
            time.sleep(0.05)
        doc = get_json(server_uri)
        assert first not in doc["PATHWAY-PRIORITY"] and first not in doc["SERVICE-LOCATION-PRIORITY"]
        assert time.monotonic() - t0 < 4.0       # heartbeats stop; out after --health-timeout 2 s
