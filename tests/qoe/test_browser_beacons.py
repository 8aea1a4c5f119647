"""Headless Chromium plays the player page through a real edge with --redis: its beacons
(fetch first, then navigator.sendBeacon at pagehide) reach the qoe topic; through an edge
without a bus, the page turns beacons off after the first answer (503)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from abrstack.beacons import QOE
from abrstack.bus import Event
from origin.server import DEFAULT_NODE_MODULES
from tests.qoe.conftest import QoeStack

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists() or not (DEFAULT_NODE_MODULES / "hls.js").is_dir(),
                       reason="needs Debian chromium and `npm install` (make setup system-deps)"),
]
BASE_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]
ARGS = [*BASE_ARGS, "--disable-quic"]


def _topic(url: str) -> list[Event]:
    """The topic, read with redis's sync client (Playwright's sync API holds an event loop)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return [Event.decode(f[b"e"]) for _i, f in client.xrange(QOE)]
    finally:
        client.close()


def _play(page: Any, url: str, until: str) -> dict[str, Any]:
    page.goto(url)
    deadline = time.monotonic() + 60
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        done = page.evaluate(until)  # before the state: the state then shows what made it true
        state = page.evaluate("() => JSON.parse(JSON.stringify(window.abrPlayer))")
        if state["errors"] or done:
            break
        time.sleep(0.25)
    return state


@pytest.mark.parametrize("player, abr, protocol", [("hls", "hls.js", "h2"), ("dash", "dash.js", "h2"),
                                                   ("hls", "hls.js", "h3")])
def test_player_page_beacons_arrive(qoe_stack: QoeStack, player: str, abr: str, protocol: str) -> None:
    from playwright.sync_api import sync_playwright

    hostport = qoe_stack.edge_https.removeprefix("https://")
    quic = ["--enable-quic", f"--origin-to-force-quic-on={hostport}"] if protocol == "h3" else ["--disable-quic"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=[*BASE_ARGS, *quic,
                                           f"--ignore-certificate-errors-spki-list={qoe_stack.spki}"])
        try:
            page = browser.new_page()
            state = _play(page, f"{qoe_stack.edge_https}/play/tiny?player={player}",
                          "() => window.abrPlayer.beacon.sent >= 1 && window.abrPlayer.currentTime > 2")
            assert state["errors"] == [] and state["beacon"]["status"] == 202, state
            sid = state["beacon"]["sessionId"]
            page.goto("about:blank")  # pagehide: the final beacon goes with sendBeacon
            deadline = time.monotonic() + 15
            mine: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                mine = sorted((e.data for e in _topic(qoe_stack.redis.url)
                               if e.data["session_id"] == sid), key=lambda b: b["seq"])
                if mine and mine[-1]["final"]:
                    break
                time.sleep(0.2)
        finally:
            browser.close()
    assert len(mine) >= 2 and mine[0]["seq"] == 0 and not mine[0]["final"] and mine[-1]["final"], mine
    last = mine[-1]
    assert (last["title"], last["abr"], last["protocol"], last["edge"]) == ("tiny", abr, protocol, "edge-a")
    assert 0 < last["startup_s"] < 30 and last["played_s"] > 2 and last["bitrate_bps"] > 0
    assert last["errors"] == 0


def test_player_page_without_a_bus_stops_beaconing(qoe_stack: QoeStack) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            state = _play(page, f"{qoe_stack.plain_edge}/play/tiny?player=hls",
                          "() => window.abrPlayer.beacon.status !== null")
        finally:
            browser.close()
    assert state["errors"] == [] and state["beacon"]["status"] == 503 and state["beacon"]["off"], state
    assert state["beacon"]["sent"] == 0


def test_dashboard_draws_charts_and_switches_dimension(qoe_stack: QoeStack) -> None:
    import asyncio

    from playwright.sync_api import sync_playwright

    from abrstack.beacons import beacon_event
    from abrstack.bus import Publisher, connect
    from tests.qoe.conftest import beacon
    from tests.qoe.test_aggregator import aggregator

    async def publish() -> None:
        client = connect(qoe_stack.redis.url)
        try:
            pub = Publisher(client)
            for i, abr in enumerate(("bola", "bba", "bola")):
                await pub.publish(QOE, beacon_event(beacon(session_id=f"dash-{i}", title="chart",
                                                           abr=abr, bitrate_bps=1e6 * (i + 1))))
        finally:
            await client.aclose()

    asyncio.run(publish())
    with aggregator(qoe_stack.redis.url) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{base}/")
            page.wait_for_function("() => window.qoeDashboard.updates >= 3 && "
                                   "document.querySelector('#rows tr[data-value=chart]')", timeout=30_000)
            lines = page.eval_on_selector_all("#chart-active polyline", "ls => ls.map(l => l.dataset.series)")
            assert "chart" in lines
            assert page.text_content("#rows tr[data-value=chart] td:nth-child(2)") == "3"  # active
            page.click("#tabs button[data-dim=abr]")
            page.wait_for_selector("#rows tr[data-value=bba]")
            series = page.eval_on_selector_all("#chart-bitrate polyline", "ls => ls.map(l => l.dataset.series)")
            assert {"bola", "bba"} <= set(series)
            assert "bus connected" in (page.text_content("#bus") or "")
            assert page.evaluate("() => window.qoeDashboard.error") is None
        finally:
            browser.close()
