"""Real players against the origin: ffmpeg as an HTTP client, and headless Chromium with
hls.js and dash.js on the player page, for a freshly encoded tiny title."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from encoder.ffmpeg import ffmpeg_exe
from origin.server import DEFAULT_NODE_MODULES
from origin.testing import running_origin

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="module")
def tiny_origin(tiny_title: Any) -> Iterator[str]:
    """A real origin serving the session's freshly encoded tiny title."""
    with running_origin(tiny_title.media_dir) as url:
        yield url


def _duration_s(ffmpeg_stderr: str) -> float:
    """The last `time=` that ffmpeg printed (how much media it read)."""
    stamps = re.findall(r"time=\s*(\d+):(\d+):(\d+\.\d+)", ffmpeg_stderr)
    assert stamps, ffmpeg_stderr[-2000:]
    hours, minutes, seconds = stamps[-1]
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@pytest.mark.parametrize("manifest", ["master.m3u8", "manifest.mpd"])
def test_ffmpeg_reads_the_title_over_http(tiny_origin: str, tiny_title: Any, manifest: str) -> None:
    url = f"{tiny_origin}/media/{tiny_title.name}/{manifest}"
    done = subprocess.run(
        [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-i",
            url,
            "-map",
            "0:v:0",
            "-map",
            "0:a:0?",
            "-c",
            "copy",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Video: h264" in done.stderr
    assert "Audio: aac" in done.stderr
    meta = json.loads((tiny_title.path / "title.json").read_text())
    assert _duration_s(done.stderr) == pytest.approx(meta["duration_s"], abs=0.6)
    metrics = httpx.get(tiny_origin + "/metrics").text
    assert re.search(
        r'abr_origin_requests_total\{method="GET",route="media",status="20[06]"\}', metrics
    )


needs_browser = pytest.mark.skipif(
    not Path(CHROMIUM).exists() or not (DEFAULT_NODE_MODULES / "dashjs").is_dir(),
    reason="needs Debian chromium and `npm install` (make setup system-deps)",
)


@pytest.mark.slow
@needs_browser
@pytest.mark.parametrize("player", ["hls", "dash"])
def test_browser_plays_the_title(tiny_origin: str, tiny_title: Any, player: str) -> None:
    from playwright.sync_api import sync_playwright

    # Playwright gives the browser a fresh temporary profile of its own.
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
            page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
            page.goto(f"{tiny_origin}/play/{tiny_title.name}?player={player}")
            deadline = time.monotonic() + 45
            state: dict[str, Any] = {}
            while time.monotonic() < deadline:
                state = page.evaluate("() => JSON.parse(JSON.stringify(window.abrPlayer))")
                if state["errors"] or state["currentTime"] > 3.2:
                    break
                time.sleep(0.25)
            assert state["errors"] == [], (state, console[-20:])
            assert state["currentTime"] > 3.0, (state, console[-20:])
            assert page.evaluate("() => document.getElementById('video').error") is None
            # the page reports the renditions and what it plays
            meta = json.loads((tiny_title.path / "title.json").read_text())
            videos = [r for r in meta["renditions"] if r["kind"] == "video"]
            assert len(state["renditions"]) == len(videos)
            assert sorted(r["height"] for r in state["renditions"]) == sorted(
                r["height"] for r in videos
            )
            rows = page.locator("#renditions tr")
            assert rows.count() == len(videos)
            assert state["currentRenditionId"] is not None
            assert page.locator("#status").inner_text() in ("playing", "ended")
            assert page.locator("#current-rendition").inner_text() != "–"
            assert state["bufferS"] >= 0
            assert state["bandwidthBps"] > 0
            assert page.locator("#bandwidth").inner_text().endswith("bit/s")
        finally:
            browser.close()


@pytest.mark.slow
@needs_browser
@pytest.mark.parametrize("player", ["hls", "dash"])
def test_browser_page_reports_a_broken_title(tmp_path: Path, player: str) -> None:
    """The page's error reporting works (so the test above can fail): a title whose
    manifests and segments are garbage ends in a player error, not in playback."""
    from origin_test_helpers import write_title
    from playwright.sync_api import sync_playwright

    broken = write_title(tmp_path / "media", "broken")
    with running_origin(broken.media_dir) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{url}/play/broken?player={player}")
            page.wait_for_function("() => window.abrPlayer.errors.length > 0", timeout=30_000)
            assert page.locator("#status").inner_text() == "error"
            assert page.evaluate("() => window.abrPlayer.currentTime") == 0
        finally:
            browser.close()
