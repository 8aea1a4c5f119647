"""Headless Chromium plays the player page through the edge over HTTP/3 (forced with
--origin-to-force-quic-on and the edge's SPKI pin) and over HTTP/2; the edge's access
log shows the protocol."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from abrstack.stack import Stack, running_stack
from origin.server import DEFAULT_NODE_MODULES

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists() or not (DEFAULT_NODE_MODULES / "hls.js").is_dir(),
                       reason="needs Debian chromium and `npm install` (make setup system-deps)"),
]


@pytest.fixture(scope="module")
def stack(tiny_title: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tiny_title.media_dir, tmp_path_factory.mktemp("browser-stack")) as s:
        yield s


def chromium_args(stack: Stack, quic: bool) -> list[str]:
    hostport = stack.edge_https.removeprefix("https://")
    args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
            f"--ignore-certificate-errors-spki-list={stack.spki}"]
    if quic:
        args += ["--enable-quic", f"--origin-to-force-quic-on={hostport}"]
    else:
        args += ["--disable-quic"]
    return args


@pytest.mark.parametrize("protocol, quic", [("h3", True), ("h2", False)])
@pytest.mark.parametrize("player", ["hls", "dash"])
def test_chromium_plays_through_the_edge(stack: Stack, tiny_title: Any, protocol: str, quic: bool,
                                         player: str) -> None:
    from playwright.sync_api import sync_playwright

    before = len(stack.access_log.read_text().splitlines()) if stack.access_log.exists() else 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=chromium_args(stack, quic))
        try:
            page = browser.new_page()
            page.goto(f"{stack.edge_https}/play/{tiny_title.name}?player={player}")
            deadline = time.monotonic() + 60
            state: dict[str, Any] = {}
            while time.monotonic() < deadline:
                state = page.evaluate("() => JSON.parse(JSON.stringify(window.abrPlayer))")
                if state["errors"] or state["currentTime"] > 3.2:
                    break
                time.sleep(0.25)
            assert state["errors"] == [] and state["currentTime"] > 3.0, state
            hops = page.evaluate(
                "() => performance.getEntriesByType('resource').filter(e => e.name.includes('.m4s'))"
                ".map(e => e.nextHopProtocol)")
            assert hops and set(hops) == {protocol}, hops
        finally:
            browser.close()
    lines = [json.loads(ln) for ln in stack.access_log.read_text().splitlines()[before:]]
    segs = [ln for ln in lines if ln["path"].endswith(".m4s")]
    assert segs and {ln["protocol"] for ln in segs} == {protocol}
