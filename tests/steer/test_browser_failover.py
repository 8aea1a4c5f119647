"""Headless Chromium plays the player page through the fleet (``/steered/play/TITLE``) with
hls.js and with dash.js; the edge it fetches segments from is SIGKILLed mid-title and
playback goes on to the end from the other edge. The browser's download rate is throttled
(DevTools) so that the 8-s title is not buffered whole before the kill."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from origin.server import DEFAULT_NODE_MODULES
from steer.testing import LocalFleet

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists() or not (DEFAULT_NODE_MODULES / "hls.js").is_dir(),
                       reason="needs Debian chromium and `npm install` (make setup system-deps)"),
]
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]
SEGMENTS = "() => performance.getEntriesByType('resource').filter(e => e.name.includes('.m4s'))" \
           ".map(e => [e.name, e.startTime])"


@pytest.mark.parametrize("player", ["hls", "dash"])
def test_playback_goes_on_when_the_edge_in_use_is_killed(tiny_title: Any, tmp_path: Path,
                                                         player: str) -> None:
    from playwright.sync_api import sync_playwright

    with LocalFleet(tiny_title.media_dir, tmp_path, edges=2, ttl_s=2) as fleet, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            cdp = page.context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.emulateNetworkConditions", {      # ~720 kbit/s
                "offline": False, "latency": 20, "downloadThroughput": 90_000, "uploadThroughput": -1})
            page.goto(f"{fleet.steer_url}/steered/play/{tiny_title.name}?player={player}")
            killed, killed_at, state = "", 0.0, {}
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                state = page.evaluate("() => JSON.parse(JSON.stringify(window.abrPlayer))")
                if state["errors"] or state["currentTime"] > 7.3:
                    break
                if not killed and state["currentTime"] > 0.5:
                    names = [n for n, u in fleet.edges.items()
                             if any(s.startswith(u) for s, _t in page.evaluate(SEGMENTS))]
                    assert len(names) == 1, names
                    killed_at = page.evaluate("() => performance.now()")
                    killed = names[0]
                    fleet.kill(killed)
                time.sleep(0.2)
            assert killed, state
            assert state["errors"] == [] and state["currentTime"] > 7.3, state
            other = next(u for n, u in fleet.edges.items() if n != killed)
            later = [t for s, t in page.evaluate(SEGMENTS) if s.startswith(other)]
            assert later and min(later) > killed_at - 1000
            print(f"{player}: first segment from the other edge {min(later) - killed_at:.0f} ms "
                  f"after the kill; warnings {state['warnings']}")
        finally:
            browser.close()
