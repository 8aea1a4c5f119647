"""`abr play` sends QoE beacons (every --beacon-interval s and at the end) to the edge it plays
from; an origin or an edge without --redis turns them off; the session is never hurt."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.qoe.conftest import QoeStack
from tests.qoe.test_edge_beacon import _topic

ABR = [sys.executable, "-m", "abrstack", "play"]


def slow_trace(tmp_path: Path) -> Path:
    """1 Mbit/s: the tiny title's ~0.6 MB take a few seconds to fetch."""
    trace = tmp_path / "slow.cooked"
    trace.write_text("".join(f"{t} 1.0\n" for t in range(0, 60)))
    return trace


def play(url: str, out: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    p = subprocess.run([*ABR, url, "--abr", "bola", "--out", str(out), *extra],
                       capture_output=True, text=True, timeout=120)
    logs = [json.loads(f.read_text()) for f in sorted(out.glob("session-*.json"))]
    return p, logs


def test_play_beacons_every_interval_and_at_the_end(qoe_stack: QoeStack, tmp_path: Path) -> None:
    url = f"{qoe_stack.edge_http}/media/tiny/master.m3u8"
    p, logs = play(url, tmp_path / "out", "--trace", str(slow_trace(tmp_path)),
                   "--beacon-interval", "0.5")
    assert p.returncode == 0, p.stderr
    (log,) = logs
    assert not [e for e in log["events"] if e["type"].startswith("beacon")], log["events"]
    sid_prefix = log["config"]["session_id"] + "."
    mine: list[dict] = []
    for _ in range(100):  # the edge sends its queue to Redis a moment after answering
        mine = sorted((e.data for e in _topic(qoe_stack.redis.url)
                       if e.data["session_id"].startswith(sid_prefix)), key=lambda b: b["seq"])
        if mine and mine[-1]["final"]:
            break
        time.sleep(0.05)
    assert len(mine) >= 3, mine  # periodic ones, then the final one
    assert [b["seq"] for b in mine] == list(range(len(mine)))
    assert [b["final"] for b in mine] == [False] * (len(mine) - 1) + [True]
    last, summary = mine[-1], log["summary"]
    assert last["title"] == "tiny" and last["abr"] == "bola" and last["protocol"] == "h1"
    assert last["edge"] == "edge-a" and last["received_by"] == "edge-a"  # from the Via header
    assert last["startup_s"] == summary["startup_s"]
    assert last["switches"] == summary["switches"]
    assert abs(last["stall_s"] - summary["rebuffer_s"]) < 0.01
    assert last["bitrate_bps"] > 0 and last["errors"] == 0
    assert mine[0]["buffer_s"] <= 60


def test_no_bus_no_beacons_and_the_session_plays(qoe_stack: QoeStack, tmp_path: Path) -> None:
    for name, base, status in (("origin", qoe_stack.origin, 404),
                               ("plain", qoe_stack.plain_edge, 503)):
        p, (log,) = play(f"{base}/media/tiny/master.m3u8", tmp_path / name)
        assert p.returncode == 0, p.stderr
        off = [e for e in log["events"] if e["type"].startswith("beacon")]
        assert len(off) == 1 and off[0]["type"] == "beacon_off" and off[0]["status"] == status, off
    before = len(_topic(qoe_stack.redis.url))
    p, (log,) = play(f"{qoe_stack.edge_http}/media/tiny/master.m3u8", tmp_path / "none", "--no-beacon")
    assert p.returncode == 0
    assert len(_topic(qoe_stack.redis.url)) == before


def test_beacon_options_are_checked(tmp_path: Path) -> None:
    for extra, words in ((["--beacon-interval", "0"], "--beacon-interval must be between"),
                         (["--beacon", "ftp://x/beacon"], "is not an http:// or https:// URL"),
                         (["--beacon", "http://x/b", "--no-beacon"], "exclusive")):
        p = subprocess.run([*ABR, "http://127.0.0.1:9/media/t/master.m3u8", *extra],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and words in p.stderr and "Traceback" not in p.stderr, p.stderr
