"""Real sessions through a real edge in front of a real origin (processes, sockets on
127.0.0.1), per protocol; shaping accuracy; load; faults."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from abrstack.stack import (
    Stack,
    free_port,
    running_edge_process,
    running_origin_process,
    running_stack,
)
from origin.testing import running_origin
from player_sim.model import default
from player_sim.player import PlayConfig, Session, SessionLog
from player_sim.traces import Trace

ABR = [sys.executable, "-m", "abrstack"]
DATA = Path(__file__).resolve().parents[2] / "player_sim" / "data" / "traces"
pytestmark = pytest.mark.slow


def const_trace(bps: float, latency_s: float = 0.02) -> Trace:
    return Trace("const", 0.0, (600.0,), (bps,), (latency_s,))


def run_session(**kw: Any) -> SessionLog:
    kw.setdefault("model", default())
    return asyncio.run(Session(PlayConfig(**kw)).run())


@pytest.fixture(scope="module")
def stack(tiny_title: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tiny_title.media_dir, tmp_path_factory.mktemp("stack")) as s:
        yield s


@pytest.mark.parametrize("protocol, version", [("h1", "1.1"), ("h2", "2"), ("h3", "3")])
@pytest.mark.parametrize("manifest", ["master.m3u8", "manifest.mpd"])
def test_a_real_session_per_protocol_through_the_edge(stack: Stack, tiny_title: Any, protocol: str,
                                                     version: str, manifest: str) -> None:
    base = stack.edge_http if protocol == "h1" else stack.edge_https
    log = run_session(url=f"{base}/media/{tiny_title.name}/{manifest}", protocol=protocol, abr="bola",
                      trace=const_trace(3_000_000), speed=4, cafile=str(stack.certfile))
    assert log.error is None, log.error
    assert log.result is not None and len(log.result.records) == 4
    media = [e for e in log.events if e["type"] == "request" and e["kind"] in ("video", "audio", "init")]
    assert {e["protocol"] for e in media} == {version}
    assert all(e["status"] == 200 and e["x_cache"] for e in media)
    assert sum(1 for e in media if e["kind"] == "video") == 4
    assert sum(1 for e in media if e["kind"] == "audio") >= 4
    kinds = [e["type"] for e in log.events]
    assert kinds.index("playback_started") > kinds.index("manifest_loaded")
    summary = log.to_dict()["summary"]
    assert summary["segments"] == 4 and summary["startup_s"] > 0
    # The edge's access log names the protocol of these requests.
    lines = [json.loads(ln) for ln in stack.access_log.read_text().splitlines()]
    assert any(ln["protocol"] == protocol and f"sid%3D%22{log.config['session_id']}" in ln.get("query", "")
               for ln in lines)


def test_shaping_follows_the_trace(tiny_title: Any) -> None:
    with running_origin(tiny_title.media_dir) as url:
        log = run_session(url=f"{url}/media/{tiny_title.name}/master.m3u8", protocol="h1", abr="bb",
                          trace=const_trace(1_000_000, 0.05), speed=2)
    assert log.error is None
    video = [e for e in log.events if e["type"] == "request" and e["kind"] == "video"]
    rates = [e["bytes"] * 8 / (e["end_s"] - e["start_s"] - 0.05) for e in video]
    # 95% of the trace carries payload (the model's payload portion): 950 kbit/s.
    assert statistics.median(rates) == pytest.approx(950_000, rel=0.05)
    assert log.received_bytes == pytest.approx(log.allowed_bytes, rel=0.1)
    assert min(e["end_s"] - e["start_s"] for e in video) >= 0.05  # the trace's latency is waited


def test_load_with_a_handful_of_players(stack: Stack, tiny_title: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [*ABR, "play", f"{stack.edge_http}/media/{tiny_title.name}/master.m3u8", "--players", "4",
         "--trace", str(DATA / "fcc"), "--speed", "8", "--abr", "dynamic", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    row = [ln.split() for ln in done.stdout.splitlines() if ln.startswith("h1 ")][0]
    assert row[1] == "4" and row[-1] == "0"
    summary = json.loads((out / "summary.json").read_text())["h1"]
    assert summary["sessions"] == 4 and summary["edge_hit_ratio"] > 0.5
    assert 0 < summary["download_s_p50"] <= summary["download_s_p95"] <= summary["download_s_p99"]
    assert len(list(out.glob("session-h1-*.json"))) == 4
    assert "<img" in (out / "report.html").read_text()
    traces = {json.loads(p.read_text())["config"]["trace"] for p in out.glob("session-h1-*.json")}
    assert len(traces) == 4  # each player its own trace


def test_edge_restarted_mid_session_shows_as_retries_not_a_crash(tiny_title: Any, tmp_path: Path) -> None:
    port, http_port = free_port(), free_port()
    logs: list[SessionLog] = []
    with running_origin_process(tiny_title.media_dir, tmp_path) as (origin, _):
        def edge() -> Any:
            return running_edge_process(origin, tmp_path, "--prefetch", "0", port=port, http_port=http_port)

        with edge() as (http, *_rest):
            url = f"{http}/media/{tiny_title.name}/master.m3u8"
            t = threading.Thread(target=lambda: logs.append(run_session(
                url=url, protocol="h1", abr="bb", trace=const_trace(600_000), speed=1)))
            t.start()
            time.sleep(2.5)  # a segment or two in
        time.sleep(1.0)  # the edge is down
        with edge():
            t.join(60)
    log = logs[0]
    assert log.error is None, log.error
    assert log.retries >= 1 and any(e["type"] == "retry" for e in log.events)
    assert log.result is not None and len(log.result.records) == 4


def test_origin_stopped_mid_session_is_a_clear_error_after_retries(tiny_title: Any, tmp_path: Path) -> None:
    slow = tmp_path / "slow.json"
    slow.write_text('[{"duration_ms": 600000, "bandwidth_kbps": 500, "latency_ms": 20}]')
    with running_origin_process(tiny_title.media_dir, tmp_path) as (origin, oproc), \
            running_edge_process(origin, tmp_path, "--prefetch", "0", "--retries", "0") as (http, *_):
        proc = subprocess.Popen(
            [*ABR, "play", f"{http}/media/{tiny_title.name}/master.m3u8", "--abr", "bb", "--trace",
             str(slow), "--max-retries", "3", "--out", str(tmp_path / "out")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(2.0)
        os.killpg(oproc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.splitlines()[-1].startswith("abr play: error: giving up on") and "Traceback" not in err
    log = json.loads((tmp_path / "out" / "session-h1-000.json").read_text())
    assert log["retries"] == 3 and log["error"].startswith("giving up")
    assert [e for e in log["events"] if e["type"] == "retry"]


@pytest.mark.parametrize("damage, words", [
    (lambda t: (t / "master.m3u8").write_text("<html>not a playlist</html>"), "neither an HLS playlist"),
    (lambda t: [p.unlink() for p in t.glob("v*/[23][64]0p/seg-00002.m4s")], "answered HTTP 404"),
])
def test_malformed_manifest_and_missing_segment_are_clear_errors(tiny_title: Any, tmp_path: Path,
                                                                damage: Any, words: str) -> None:
    media = tmp_path / "media"
    shutil.copytree(tiny_title.path, media / "t")
    damage(media / "t")
    with running_origin(media) as url:
        done = subprocess.run([*ABR, "play", f"{url}/media/t/master.m3u8", "--speed", "8"],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("abr play: error: ") and words in done.stderr
    assert "Traceback" not in done.stderr
