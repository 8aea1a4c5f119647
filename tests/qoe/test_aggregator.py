"""End to end: real redis-server, real edge, real `abr play` sessions sending beacons, a real
`abr qoe` process; its /metrics, JSON API and dashboard reflect them. Malformed events are
dead-lettered, and the aggregator serves while Redis is away."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from abrstack.beacons import QOE
from abrstack.bus import Event, Publisher, connect, dead_topic
from abrstack.stack import background, free_port
from tests.qoe.conftest import QoeStack, beacon
from tests.qoe.test_player_beacons import play, slow_trace

ABR = [sys.executable, "-m", "abrstack"]


@contextmanager
def aggregator(redis_url: str, *extra: str) -> Iterator[str]:
    argv = [*ABR, "qoe", "--redis", redis_url, "--port", "0", "--sample-s", "0.5",
            "--group", f"test-{uuid.uuid4().hex[:8]}", *extra]
    with background(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"dashboard (http://[\d.]+:\d+)/", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        yield m.group(1)


def wait_for(check, timeout_s: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_api_and_dashboard_reflect_real_sessions(qoe_stack: QoeStack, tmp_path: Path) -> None:
    trace = str(slow_trace(tmp_path))
    p1, _ = play(f"{qoe_stack.edge_http}/media/tiny/master.m3u8", tmp_path / "a", "--trace", trace,
                 "--beacon-interval", "0.5")
    p2, (log2,) = play(f"{qoe_stack.edge_https}/media/tiny/manifest.mpd", tmp_path / "b",
                       "--abr", "dynamic", "--protocol", "h2", "--cacert", str(qoe_stack.certfile))
    assert p1.returncode == 0 and p2.returncode == 0, (p1.stderr, p2.stderr)
    with aggregator(qoe_stack.redis.url) as base:
        def ended() -> str | None:
            text = httpx.get(f"{base}/metrics").text
            ok = all(metric(text, "qoe_sessions_ended_total", abr=a, protocol=p) == 1.0
                     for a, p in (("bola", "h1"), ("dynamic", "h2")))
            return text if ok else None
        text = wait_for(ended)
        assert text, httpx.get(f"{base}/metrics").text
        bola = {"title": "tiny", "edge": "edge-a", "abr": "bola", "protocol": "h1"}
        assert metric(text, "qoe_sessions_total", **bola) == 1.0
        assert metric(text, "qoe_beacons_total", **bola) >= 3  # type: ignore[operator]
        assert metric(text, "qoe_played_seconds_total", **bola) > 0  # type: ignore[operator]
        assert metric(text, "qoe_startup_seconds_count", **bola) == 1.0
        assert metric(text, "qoe_active_sessions", **bola) == 0.0  # both ended
        api = httpx.get(f"{base}/api/qoe").json()
        assert api["bus"]["connected"] and api["all"]["sessions"] == 2
        assert set(api["by"]["abr"]) == {"bola", "dynamic"}
        assert set(api["by"]["protocol"]) == {"h1", "h2"} and set(api["by"]["edge"]) == {"edge-a"}
        assert api["by"]["abr"]["dynamic"]["startup_mean_s"] == log2["summary"]["startup_s"]
        hist = wait_for(lambda: "bola" in (h := httpx.get(f"{base}/api/qoe/history").json())["by"]["abr"]
                        and h)
        assert hist and len(hist["t"]) == len(hist["by"]["abr"]["bola"]["active"])
        page = httpx.get(f"{base}/")
        assert page.status_code == 200 and "QoE, live" in page.text and "static/dashboard.js" in page.text
        js = httpx.get(f"{base}/static/dashboard.js")
        assert js.status_code == 200 and "polyline" in js.text and "http" not in js.text.split("NS =")[0]


def test_malformed_events_are_dead_lettered_and_consuming_goes_on(qoe_stack: QoeStack) -> None:
    async def publish(*events: Event) -> None:
        client = connect(qoe_stack.redis.url)
        try:
            for e in events:
                assert await Publisher(client).publish(QOE, e)
        finally:
            await client.aclose()

    with aggregator(qoe_stack.redis.url) as base:
        asyncio.run(publish(Event("qoe.beacon", {"title": 7}), Event("title.published", {}),
                            Event("qoe.beacon", beacon(session_id="after-bad", title="later"))))
        text = wait_for(lambda: (t := httpx.get(f"{base}/metrics").text) and
                        metric(t, "qoe_sessions_total", title="later") == 1.0 and t)
        assert text and metric(text, "qoe_beacons_ignored_total", reason="malformed") == 2.0

        async def dead() -> list[str]:
            client = connect(qoe_stack.redis.url)
            try:
                return [f[b"reason"].decode() for _i, f in await client.xrange(dead_topic(QOE))]
            finally:
                await client.aclose()
        reasons = asyncio.run(dead())
        assert "not a beacon: 'session_id' is missing" in reasons, reasons
        assert "not a beacon: not a beacon event: 'title.published'" in reasons, reasons


def test_serves_while_redis_is_away_and_bad_options() -> None:
    with aggregator(f"redis://127.0.0.1:{free_port()}/0") as base:
        r = httpx.get(f"{base}/healthz")
        assert r.status_code == 200 and r.json()["bus"] is False
        assert httpx.get(f"{base}/api/qoe").json()["all"]["sessions"] == 0
        assert "qoe_beacons_ignored_total" in httpx.get(f"{base}/metrics").text
        port = base.rsplit(":", 1)[1]
        taken = subprocess.run([*ABR, "qoe", "--redis", "redis://127.0.0.1:1/0", "--port", port],
                               capture_output=True, text=True, timeout=30)
        assert taken.returncode == 1 and "cannot listen on 127.0.0.1:" in taken.stderr
        assert "Traceback" not in taken.stderr
    for extra, words in ((["--redis", "http://x"], "is not a redis:// URL"),
                         (["--redis", "redis://x", "--active-s", "0"], "--active-s must be")):
        p = subprocess.run([*ABR, "qoe", *extra], capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and words in p.stderr and "Traceback" not in p.stderr, p.stderr
