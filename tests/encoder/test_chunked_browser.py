"""Headless Chromium plays a chunked title to its end with hls.js and dash.js, across the
chunk boundaries, served by a real origin (MSE rejects a track whose timestamps jump)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from origin.testing import running_origin
from tests.encoder.conftest import lavfi
from tests.encoder.test_tracks_browser import ARGS, CHROMIUM, pytestmark  # noqa: F401

SETUP = """
([kind, url]) => {
  const video = document.createElement('video');
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.appendChild(video);
  window.t = {video, errors: [], waiting: 0};
  video.addEventListener('waiting', () => { window.t.waiting += 1; });
  video.addEventListener('error', () => window.t.errors.push('video: ' + (video.error || {}).message));
  if (kind === 'hls') {
    const hls = new Hls();
    hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) window.t.errors.push(d.details); });
    hls.loadSource(url); hls.attachMedia(video);
  } else {
    const p = dashjs.MediaPlayer().create();
    p.on('error', (e) => window.t.errors.push(String(e.error && e.error.message || e.error)));
    p.initialize(video, url, true);
  }
  video.playbackRate = 2;
  video.play().catch(() => {});
}
"""

STATE = """() => ({t: window.t.video.currentTime, ended: window.t.video.ended, errors: window.t.errors,
  frames: window.t.video.getVideoPlaybackQuality().totalVideoFrames,
  buffered: Array.from({length: window.t.video.buffered.length},
                       (_, i) => [window.t.video.buffered.start(i), window.t.video.buffered.end(i)])})"""


@pytest.fixture(scope="module")
def chunked_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from encoder.encode import EncodeConfig, encode

    d = tmp_path_factory.mktemp("chunked-browser")
    src = lavfi(d / "src.mp4", "testsrc2=size=320x180:rate=30", seconds=12)
    encode(EncodeConfig(source=src, title="ch", media_dir=d / "media", segment_s=2.0, chunks="3",
                        workers=2, progress="none"))
    with running_origin(d / "media") as url:
        yield url


@pytest.mark.parametrize("player", ["hls", "dash"])
def test_chunked_title_plays_to_the_end(chunked_origin: str, player: str) -> None:
    from playwright.sync_api import sync_playwright

    manifest = "master.m3u8" if player == "hls" else "manifest.mpd"
    lib = "hls.min.js" if player == "hls" else "dash.all.min.js"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{chunked_origin}/healthz")
            page.add_script_tag(url=f"{chunked_origin}/static/vendor/{lib}")
            page.evaluate(SETUP, [player, f"{chunked_origin}/media/ch/{manifest}"])
            state: dict[str, Any] = {}
            deadline = time.monotonic() + 45
            while time.monotonic() < deadline:
                state = page.evaluate(STATE)
                assert state["errors"] == [], state
                if state["ended"]:
                    break
                time.sleep(0.25)
            assert state["ended"], state
            assert state["t"] >= 11.9, state
            # one buffered range from 0 to the end: no hole at a chunk boundary
            assert len(state["buffered"]) == 1 and state["buffered"][0][0] < 0.1, state
            assert state["frames"] >= 0.9 * 12 * 30, state
        finally:
            browser.close()
