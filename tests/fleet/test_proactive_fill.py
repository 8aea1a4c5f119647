"""Proactive fill with real processes: `title.published` on the bus → the edge that HRW
assigns to the title holds its manifests and first segments before the first request."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from abrstack.bus import Publisher, connect
from abrstack.events import TITLES, title_event
from abrstack.fleetspec import parse_spec
from abrstack.fleetstatus import metric_sums
from steer.hrw import assign
from tests.conftest import TinyTitle
from tests.fleet.conftest import CountingOrigin, running_fleet


async def _publish(url: str, title: str) -> None:
    client = connect(url)
    try:
        deadline = time.monotonic() + 10  # every edge's consumer group exists ("$": new only)
        while len(await client.xinfo_groups(TITLES) if await client.exists(TITLES) else []) < 3:
            assert time.monotonic() < deadline, "the edges' consumer groups did not appear"
            await asyncio.sleep(0.05)
        await Publisher(client).publish(TITLES, title_event("title.published", title, "v1"))
    finally:
        await client.aclose()


def test_published_title_is_in_the_assigned_edge_first(
        tmp_path: Path, tiny_title: TinyTitle, counting_origin: CountingOrigin) -> None:
    spec = parse_spec({"origin": {"url": counting_origin.url}, "edges": {"count": 3},
                       "shield": True, "steering": False, "fill": {"segments": 2}})
    owner = assign("tiny", spec.edge_names())[0]
    with running_fleet(spec, tmp_path / "fleet") as fleet:
        edges = {e.name: e for e in fleet.edges}
        asyncio.run(_publish(fleet.redis.url, "tiny"))
        deadline = time.monotonic() + 10
        while True:
            m = metric_sums(httpx.get(edges[owner].url + "/metrics").text)
            if m.get("edge_proactive_fill_titles_total{outcome=filled}"):
                break
            assert time.monotonic() < deadline, "the assigned edge did not fill the title"
            time.sleep(0.05)
        assert m["edge_proactive_fill_objects_total{outcome=filled}"] >= 2 + 3 * 3
        seg = sorted(tiny_title.path.glob("v*/360p/*.m4s"))
        first = "/media/" + seg[0].relative_to(tiny_title.media_dir).as_posix()
        for path in ("/media/tiny/master.m3u8", first):
            r = httpx.get(edges[owner].url + path)
            assert r.status_code == 200 and r.headers["x-cache"] == "HIT", (path, r.headers)
            assert counting_origin.count(path) == 1  # once, by the fill (through the shield)
        other = next(n for n in edges if n != owner)
        assert httpx.get(edges[other].url + first).headers["x-cache"].startswith("MISS")
        for n in edges:
            if n != owner:
                mo = metric_sums(httpx.get(edges[n].url + "/metrics").text)
                assert mo.get("edge_proactive_fill_titles_total{outcome=skipped}") == 1
