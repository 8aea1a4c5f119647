"""The shield tier with real processes: collapsing across tiers (a stampede over 3 edges is
ONE origin fetch), Via loop detection, and edges going to the origin when the shield is down."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from abrstack.fleet import stop
from abrstack.fleetspec import parse_spec, shorthand
from tests.conftest import TinyTitle
from tests.fleet.conftest import CountingOrigin, running_fleet


def _segment(tiny_title: TinyTitle) -> str:
    seg = sorted(tiny_title.path.glob("v*/*/seg-*.m4s")) or sorted(tiny_title.path.rglob("*.m4s"))
    return "/media/" + seg[1].relative_to(tiny_title.media_dir).as_posix()


async def _stampede(urls: list[str], path: str, per_edge: int) -> list[tuple[int, int, str]]:
    async with httpx.AsyncClient(timeout=20, limits=httpx.Limits(max_connections=200)) as c:
        async def one(u: str) -> tuple[int, int, str]:
            r = await c.get(u + path)
            return r.status_code, len(r.content), r.headers.get("x-cache", "")
        return await asyncio.gather(*(one(u) for u in urls for _ in range(per_edge)))


def test_stampede_over_three_edges_is_one_origin_fetch(
        tmp_path: Path, tiny_title: TinyTitle, counting_origin: CountingOrigin) -> None:
    spec = shorthand(edges=3, shield=True, steering=False, origin_url=counting_origin.url)
    path = _segment(tiny_title)
    size = (tiny_title.media_dir / path.removeprefix("/media/")).stat().st_size
    counting_origin.delay_s = 0.5  # every edge's miss arrives while the first fetch is out
    with running_fleet(spec, tmp_path / "fleet") as fleet:
        doc = json.loads((tmp_path / "fleet" / "fleet.json").read_text())
        assert [e["name"] for e in doc["edges"]] == ["edge-1", "edge-2", "edge-3"]
        assert all(e["spki"] and e["h2"].startswith("https://") for e in doc["edges"])
        answers = asyncio.run(_stampede([e.url for e in fleet.edges], path, 10))
        assert all(status == 200 and n == size for status, n, _ in answers), answers
        assert counting_origin.count(path) == 1
        # the shield saw at most one request per edge: each edge collapsed its own crowd
        shield_metrics = httpx.get(fleet.shield.url + "/metrics").text  # type: ignore[union-attr]
        assert "edge_collapsed_requests_total" in shield_metrics


def test_via_loop_is_refused(tmp_path: Path, counting_origin: CountingOrigin) -> None:
    spec = shorthand(edges=1, shield=True, steering=False, origin_url=counting_origin.url)
    with running_fleet(spec, tmp_path / "fleet") as fleet:
        assert fleet.shield is not None
        r = httpx.get(fleet.shield.url + "/media/tiny/master.m3u8",
                      headers={"Via": "1.1 edge-1, 1.1 shield"})
        assert r.status_code == 508 and "loop" in r.text
        assert counting_origin.media_requests() == 0
        ok = httpx.get(fleet.edges[0].url + "/media/tiny/master.m3u8")
        assert ok.status_code == 200 and ok.headers["via"] == "1.1 shield, 1.1 edge-1"


def test_shield_down_edges_go_to_the_origin(tmp_path: Path, tiny_title: TinyTitle,
                                            counting_origin: CountingOrigin) -> None:
    path = _segment(tiny_title)
    spec = shorthand(edges=1, shield=True, steering=False, origin_url=counting_origin.url)
    with running_fleet(spec, tmp_path / "fleet") as fleet:
        assert fleet.shield is not None and stop(fleet.shield)
        r = httpx.get(fleet.edges[0].url + path, timeout=20)
        assert r.status_code == 200 and r.headers["x-cache"].startswith("MISS")
        assert r.headers["via"] == "1.1 edge-1" and counting_origin.count(path) == 1


def test_shield_down_without_fallback_fails(tmp_path: Path, tiny_title: TinyTitle,
                                            counting_origin: CountingOrigin) -> None:
    path = _segment(tiny_title)
    spec = parse_spec({"origin": {"url": counting_origin.url}, "edges": {"count": 1},
                       "shield": {"fallback_to_origin": False}, "steering": False})
    with running_fleet(spec, tmp_path / "fleet") as fleet:
        assert fleet.shield is not None and stop(fleet.shield)
        r = httpx.get(fleet.edges[0].url + path, timeout=20)
        assert r.status_code == 502 and counting_origin.count(path) == 0
