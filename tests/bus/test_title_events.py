"""`titles` events through a real redis-server purge a real edge store, also when Redis was
down while the encoder published."""

from __future__ import annotations

import asyncio
from pathlib import Path

from abrstack.bus import Consumer, Publisher, connect
from abrstack.events import TITLES, title_event
from abrstack.redisproc import RedisServer
from edge.events import TitlePurger
from edge.policy import Entry
from edge.store import TieredStore


def _entry(n: int) -> Entry:
    return Entry(200, (("cache-control", "max-age=31536000, immutable"),), 1.0, 2.0, n)


def _fill(store: TieredStore) -> None:
    for key in ("/media/a/v1/seg_1.m4s", "/media/a/v1/master.m3u8", "/titles/a",
                "/media/ab/v1/seg_1.m4s", "/media/b/v1/seg_1.m4s"):
        store.store(key, _entry(3), b"abc", to_disk=True)


def _keys(store: TieredStore) -> set[str]:
    return set(store.memory.keys()) | set(store.disk.keys())


def test_replaced_title_purged_after_redis_comes_back(redis_server: RedisServer,
                                                      tmp_path: Path) -> None:
    store = TieredStore(1 << 20, tmp_path / "disk", 1 << 24)
    _fill(store)

    async def go() -> None:
        pub_client, edge_client = connect(redis_server.url), connect(redis_server.url)
        consumer = Consumer(edge_client, TITLES, "edge-1", "w0", block_s=0.05)
        await consumer.ensure_group("$")
        redis_server.stop()
        pub = Publisher(pub_client)
        assert await pub.publish(TITLES, title_event("title.replaced", "a", "v2")) is None
        assert await pub.publish(TITLES, title_event("title.published", "c", "v1")) is None
        assert _keys(store) >= {"/media/a/v1/seg_1.m4s", "/titles/a"}  # nothing yet
        redis_server.start()
        assert await pub.flush()
        purger = TitlePurger(store)
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(purger, stop))
        for _ in range(100):
            if "/titles/a" not in _keys(store):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task
        assert _keys(store) == {"/media/ab/v1/seg_1.m4s", "/media/b/v1/seg_1.m4s"}
        assert purger.purged == 3
        assert (await edge_client.xpending(TITLES, "edge-1"))["pending"] == 0
        await pub_client.aclose()
        await edge_client.aclose()
    asyncio.run(go())


def test_duplicate_delivery_purges_once(redis_server: RedisServer, tmp_path: Path) -> None:
    store = TieredStore(1 << 20, tmp_path / "disk", 1 << 24)
    purger = TitlePurger(store)
    ev = title_event("title.deleted", "a")

    async def go() -> None:
        _fill(store)
        await purger(ev)
        store.store("/media/a/v2/seg_1.m4s", _entry(3), b"new", to_disk=False)
        await purger(ev)  # redelivered: already handled, the new object stays
    asyncio.run(go())
    assert "/media/a/v2/seg_1.m4s" in _keys(store)


def test_abr_encode_announces_the_title(redis_server: RedisServer, tiny_source: Path,
                                        tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    from abrstack.bus import Event

    media = tmp_path / "media"
    base = [sys.executable, "-m", "abrstack", "encode", str(tiny_source), "--title", "t",
            "--media", str(media), "--segment-s", "2", "--progress", "none",
            "--redis", redis_server.url]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for extra in ([], ["--force"]):
        done = subprocess.run(base + extra, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr

    async def read() -> list[Event]:
        r = connect(redis_server.url)
        entries = await r.xrange(TITLES)
        await r.aclose()
        return [Event.decode(f[b"e"]) for _i, f in entries]
    events = asyncio.run(read())
    assert [e.type for e in events] == ["title.published", "title.replaced"]
    doc = json.loads((media / "t" / "title.json").read_text())
    assert events[1].data["version"] == doc["version"] != events[0].data["version"]
    assert events[1].data["manifests"] == ["/media/t/master.m3u8", "/media/t/manifest.mpd"]


def test_running_edge_purges_a_replaced_title_published_while_redis_was_down(
        redis_server: RedisServer, tmp_path: Path) -> None:
    import time

    import httpx

    from tests.edge.conftest import Obj, fake_origin, running_edge

    seg = "/media/t/v1/a.m4s"
    with fake_origin() as (state, url):
        state.objects[seg] = Obj(b"old", {"Cache-Control": "max-age=31536000, immutable"})
        with running_edge([url], tmp_path / "cache", redis_url=redis_server.url) as edge:
            httpx.get(edge.http + seg)
            assert httpx.get(edge.http + seg).headers["x-cache"] == "HIT"
            time.sleep(0.3)  # the edge's consumer group exists before the outage
            redis_server.stop()
            assert httpx.get(edge.http + seg).headers["x-cache"] == "HIT"  # still serving

            async def publish() -> None:
                client = connect(redis_server.url)
                pub = Publisher(client)
                assert await pub.publish(TITLES, title_event("title.replaced", "t", "v2")) is None
                redis_server.start()
                assert await pub.flush()
                await client.aclose()
            asyncio.run(publish())
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if httpx.get(edge.http + seg).headers["x-cache"] == "MISS":
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("the edge never purged the replaced title")
            assert state.count(seg) == 2
