"""`POST /beacon` on a real edge process: CORS both ways, bounds, schema, the `qoe` topic in a
real redis-server; the bus is never on the serving path."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from abrstack.beacons import MAX_BEACON_BYTES, QOE
from abrstack.bus import Event, connect
from abrstack.redisproc import RedisServer
from abrstack.stack import running_edge_process, running_origin_process
from tests.qoe.conftest import QoeStack, beacon


def _topic(url: str) -> list[Event]:
    async def go() -> list[Event]:
        client = connect(url)
        try:
            return [Event.decode(f[b"e"]) for _id, f in await client.xrange(QOE)]
        finally:
            await client.aclose()
    return asyncio.run(go())


def _wait_topic(url: str, n: int, timeout_s: float = 10.0) -> list[Event]:
    deadline = time.monotonic() + timeout_s
    while True:
        events = _topic(url)
        if len(events) >= n or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def test_beacon_sent_like_send_beacon_reaches_the_topic(qoe_stack: QoeStack) -> None:
    before = len(_topic(qoe_stack.redis.url))
    body = json.dumps(beacon(session_id="sb-1", edge=None)).encode()
    r = httpx.post(f"{qoe_stack.edge_http}/beacon", content=body,
                   headers={"content-type": "text/plain;charset=UTF-8", "origin": "http://page.test"})
    assert r.status_code == 202, r.text
    assert r.headers["access-control-allow-origin"] == "*"
    events = _wait_topic(qoe_stack.redis.url, before + 1)
    got = [e for e in events if e.data.get("session_id") == "sb-1"]
    assert len(got) == 1 and got[0].id == r.json()["accepted"]
    assert got[0].type == "qoe.beacon"
    assert got[0].data["received_by"] == "edge-a" and got[0].data["edge"] == "edge-a"
    assert got[0].data["bitrate_bps"] == 400_000.0 and got[0].data["final"] is False


def test_preflighted_json_beacon(qoe_stack: QoeStack) -> None:
    pre = httpx.options(f"{qoe_stack.edge_http}/beacon", headers={
        "origin": "http://page.test", "access-control-request-method": "POST",
        "access-control-request-headers": "content-type"})
    assert pre.status_code == 204
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "content-type" in pre.headers["access-control-allow-headers"].lower()
    assert pre.headers["access-control-allow-origin"] == "*"
    r = httpx.post(f"{qoe_stack.edge_http}/beacon", json=beacon(session_id="sj-1", edge="other-edge",
                                                                received_by="liar"),
                   headers={"origin": "http://page.test"})
    assert r.status_code == 202, r.text
    got = [e for e in _wait_topic(qoe_stack.redis.url, 1) if e.data.get("session_id") == "sj-1"]
    for _ in range(100):
        if got:
            break
        time.sleep(0.05)
        got = [e for e in _topic(qoe_stack.redis.url) if e.data.get("session_id") == "sj-1"]
    assert got and got[0].data["edge"] == "other-edge" and got[0].data["received_by"] == "edge-a"


@pytest.mark.parametrize("body, ctype, status, words", [
    (b"{not json", "text/plain", 400, "not JSON"),
    (b"[1, 2]", "text/plain", 400, "JSON object"),
    (json.dumps(beacon(colour="red")).encode(), "text/plain", 400, "unknown beacon field(s): colour"),
    (json.dumps(beacon(stalls=-1)).encode(), "text/plain", 400, "'stalls' must be an integer"),
    (json.dumps(beacon(stalls=1.5)).encode(), "application/json", 400, "'stalls' must be an integer"),
    (json.dumps(beacon(buffer_s=float("inf"))).encode(), "text/plain", 400, "'buffer_s' must be a number"),
    (json.dumps(beacon(buffer_s=1e9)).encode(), "text/plain", 400, "'buffer_s' must be a number"),
    (json.dumps(beacon(protocol="h9")).encode(), "text/plain", 400, "'protocol' must be one of"),
    (json.dumps(beacon(title="../etc")).encode(), "text/plain", 400, "'title' must be 1-128"),
    (json.dumps(beacon(session_id=None)).encode(), "text/plain", 400, "'session_id' is missing"),
    (json.dumps(beacon(final="yes")).encode(), "text/plain", 400, "'final' must be true or false"),
    (json.dumps(beacon()).encode(), "application/x-www-form-urlencoded", 415, "text/plain"),
    (b"{" + b" " * MAX_BEACON_BYTES + b"}", "text/plain", 413, f"at most {MAX_BEACON_BYTES} bytes"),
])
def test_bad_beacons_are_refused_with_one_sentence(qoe_stack: QoeStack, body: bytes, ctype: str,
                                                   status: int, words: str) -> None:
    r = httpx.post(f"{qoe_stack.edge_http}/beacon", content=body, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert words in r.text and r.text.count("\n") == 1
    assert r.headers["access-control-allow-origin"] == "*"


def test_oversize_chunked_beacon_is_refused_without_reading_it_all(qoe_stack: QoeStack) -> None:
    def chunks() -> Any:
        for _ in range(1000):  # 1 MB, no Content-Length
            yield b" " * 1000
    r = httpx.post(f"{qoe_stack.edge_http}/beacon", content=chunks(),
                   headers={"content-type": "text/plain"})
    assert r.status_code == 413


def test_other_methods_and_the_edge_without_a_bus(qoe_stack: QoeStack) -> None:
    r = httpx.get(f"{qoe_stack.edge_http}/beacon")
    assert r.status_code == 405 and "POST" in r.headers["allow"]
    r = httpx.post(f"{qoe_stack.plain_edge}/beacon", json=beacon())
    assert r.status_code == 503
    assert r.text == ("QoE beacons are off: this edge runs without --redis "
                      "(no event bus to append them to).\n")
    assert httpx.post(f"{qoe_stack.edge_http}/beacon", json=beacon()).status_code == 202
    metrics = httpx.get(f"{qoe_stack.edge_http}/metrics").text
    assert 'edge_beacons_total{outcome="accepted",worker="0"}' in metrics
    assert 'edge_beacons_total{outcome="rejected",worker="0"}' in metrics


def test_redis_down_edge_answers_fast_and_sends_later(tiny_title: Any, tmp_path: Path) -> None:
    """Stop Redis: beacons are still answered at once, the edge keeps serving media; start it
    again: every beacon taken meanwhile reaches the topic."""
    with RedisServer(tmp_path / "redis") as redis, \
            running_origin_process(tiny_title.media_dir, tmp_path) as (origin, _o), \
            running_edge_process(origin, tmp_path, "--redis", redis.url) as (http, *_):
        assert httpx.post(f"{http}/beacon", json=beacon(session_id="up")).status_code == 202
        assert len(_wait_topic(redis.url, 1)) == 1
        redis.stop()
        with httpx.Client() as c:
            for i in range(20):
                t0 = time.monotonic()
                r = c.post(f"{http}/beacon", json=beacon(session_id="down", seq=i))
                assert r.status_code == 202 and time.monotonic() - t0 < 0.5
            media = c.get(f"{http}/media/tiny/master.m3u8")
            assert media.status_code == 200 and b"#EXTM3U" in media.content
        time.sleep(1.5)  # the edge's sender is failing against the stopped server now
        redis.start()
        events = _wait_topic(redis.url, 21, timeout_s=15)
        down = [e.data["seq"] for e in events if e.data["session_id"] == "down"]
        assert down == list(range(20))
