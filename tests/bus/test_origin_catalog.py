"""`abr origin --redis`: the catalog follows `titles` events on a real redis-server (published by
a real `abr encode --redis`, replaced, deleted), a malformed event stops nothing, and the origin
keeps serving its catalog while Redis is down."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from abrstack.bus import Event, Publisher, connect
from abrstack.events import TITLES, title_event
from abrstack.redisproc import RedisServer
from origin.testing import running_origin
from tests.conftest import TinyTitle


def _publish(url: str, *events: Event) -> None:
    async def go() -> None:
        client = connect(url)
        pub = Publisher(client)
        for e in events:
            assert await pub.publish(TITLES, e) is not None
        await client.aclose()
    asyncio.run(go())


def _until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("never happened")


def test_catalog_follows_titles_events(redis_server: RedisServer, tiny_title: TinyTitle,
                                       tiny_source: Path, tmp_path: Path) -> None:
    media = tmp_path / "media"
    shutil.copytree(tiny_title.path, media / "a")
    with running_origin(media, redis_url=redis_server.url) as base:
        def names() -> list[str]:
            return [t["name"] for t in httpx.get(base + "/titles").json()["titles"]]
        assert names() == ["a"]
        time.sleep(0.5)  # the origin now tails the topic
        shutil.copytree(tiny_title.path, media / "b")  # copied in without an event
        time.sleep(0.5)
        assert names() == ["a"]  # the catalog is the events', not a scan per request
        _publish(redis_server.url, title_event("title.published", "b"))
        _until(lambda: names() == ["a", "b"])

        # a real encode announces a new title
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        done = subprocess.run([sys.executable, "-m", "abrstack", "encode", str(tiny_source),
                               "--title", "c", "--media", str(media), "--segment-s", "2",
                               "--progress", "none", "--redis", redis_server.url],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        _until(lambda: names() == ["a", "b", "c"])
        assert httpx.get(base + "/titles/c").json()["manifests"]["hls"] == "/media/c/master.m3u8"

        # replaced: the entry is reloaded; deleted: it is gone; malformed: skipped
        doc = json.loads((media / "a" / "title.json").read_text())
        (media / "a" / "title.json").write_text(json.dumps({**doc, "created": "2030-01-01T00:00:00Z"}))
        shutil.rmtree(media / "b")
        _publish(redis_server.url, Event("title.replaced", {"title": "../etc"}),
                 title_event("title.replaced", "a", "v2"), title_event("title.deleted", "b"))
        _until(lambda: names() == ["a", "c"])
        assert httpx.get(base + "/titles/a").json()["created"] == "2030-01-01T00:00:00Z"
        assert httpx.get(base + "/titles/b").status_code == 404

        # Redis down: the catalog keeps serving; back: it rescans and follows again
        redis_server.stop()
        assert names() == ["a", "c"]
        assert httpx.get(base + "/media/a/master.m3u8").status_code == 200
        shutil.copytree(tiny_title.path, media / "d")  # while the bus was away
        redis_server.start()
        _until(lambda: names() == ["a", "c", "d"])
        shutil.rmtree(media / "c")
        _publish(redis_server.url, title_event("title.deleted", "c"))
        _until(lambda: names() == ["a", "d"])
