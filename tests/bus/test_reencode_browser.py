"""A re-encoded title never mixes versions: headless Chromium plays a title through an edge,
`abr encode --force --redis` re-encodes it with another ladder, and the same browser profile
plays it again through the same edge. Every media URL of the second play (playlists, init and
media segments) is in the new version's folder, and the edge holds none of the old version's
objects (`title.replaced` purged them; its segments are `immutable` for a year)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from abrstack.redisproc import RedisServer
from origin.server import DEFAULT_NODE_MODULES
from origin.testing import running_origin
from tests.edge.conftest import running_edge

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists() or not (DEFAULT_NODE_MODULES / "hls.js").is_dir(),
                       reason="needs Debian chromium and `npm install` (make setup system-deps)"),
]
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]
MEDIA_URLS = ("() => performance.getEntriesByType('resource').map(e => e.name)"
              ".filter(n => n.includes('/media/'))")
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _encode(source: Path, media: Path, ladder: Path, redis_url: str, *extra: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "abrstack", "encode", str(source), "--title", "r",
                           "--media", str(media), "--segment-s", "2", "--ladder", str(ladder),
                           "--progress", "none", "--redis", redis_url, *extra],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(json.loads((media / "r" / "title.json").read_text()))


def _play(page: Any, url: str) -> list[str]:
    """Play to the end; the media URLs the page fetched."""
    page.goto(url)
    deadline = time.monotonic() + 60
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = page.evaluate("() => JSON.parse(JSON.stringify(window.abrPlayer))")
        if state["errors"] or state["currentTime"] > 7.3:
            break
        time.sleep(0.2)
    assert state["errors"] == [] and state["currentTime"] > 7.3, state
    return list(page.evaluate(MEDIA_URLS))


@pytest.mark.parametrize("player", ["hls", "dash"])
def test_replayed_title_is_all_new_version(player: str, tiny_source: Path, tmp_path: Path,
                                           redis_server: RedisServer) -> None:
    from playwright.sync_api import sync_playwright

    media = tmp_path / "media"
    (tmp_path / "one.json").write_text(json.dumps([{"height": 240, "bitrate_kbps": 300}]))
    (tmp_path / "two.json").write_text(json.dumps([{"height": 360, "bitrate_kbps": 700},
                                                   {"height": 180, "bitrate_kbps": 200}]))
    old = _encode(tiny_source, media, tmp_path / "one.json", redis_server.url)
    with running_origin(media, redis_url=redis_server.url) as origin, \
            running_edge([origin], tmp_path / "cache", redis_url=redis_server.url) as edge, \
            sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = context.new_page()
            url = f"{edge.http}/play/r?player={player}"
            first = _play(page, url)
            assert any(f"/media/r/{old['version']}/240p/" in u for u in first), first
            cached = set(edge.app.store.memory.keys()) | set(edge.app.store.disk.keys())
            assert any(f"/{old['version']}/" in k for k in cached), cached

            new = _encode(tiny_source, media, tmp_path / "two.json", redis_server.url, "--force")
            assert new["version"] != old["version"]
            deadline = time.monotonic() + 10  # the edge drops the old version at the event
            while time.monotonic() < deadline:
                cached = set(edge.app.store.memory.keys()) | set(edge.app.store.disk.keys())
                if not any(f"/{old['version']}/" in k for k in cached):
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"the edge kept the old version: {sorted(cached)}")

            page.close()
            page = context.new_page()  # same profile: its HTTP cache holds the old version
            second = _play(page, url)
            media_files = [u for u in second if u.endswith((".m4s", ".mp4", ".m3u8"))
                           and not u.endswith(("/master.m3u8",))]
            assert media_files, second
            assert all(f"/media/r/{new['version']}/" in u for u in media_files), second
            assert any("/360p/" in u or "/180p/" in u for u in media_files), second
            cached = set(edge.app.store.memory.keys()) | set(edge.app.store.disk.keys())
            assert not any(f"/{old['version']}/" in k for k in cached), sorted(cached)
        finally:
            context.close()
