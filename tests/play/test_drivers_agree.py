"""`abr play`'s driver and `abr sim`'s make the same session, segment by segment.

The real player's code path (``player.Session``: manifests, title.json, CMCD, shaping,
the in-flight watch that feeds the session core, abandonment) runs over a fake outside
world: an event loop whose clock is virtual (it jumps to the next timer instead of
sleeping) and an HTTP client that answers at once from an in-memory title. The player's
own shaper then delivers the bytes at the trace's rate, as on a real loopback session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import selectors
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from player_sim.clients import HttpClient, OnChunk, Reply
from player_sim.model import Model, default
from player_sim.player import PlayConfig, Session, SessionLog
from player_sim.sim import run_session
from player_sim.traces import Trace, load_traces
from player_sim.video import Video, load_video

DATA = Path(__file__).resolve().parents[2] / "player_sim" / "data"
CHUNK = 16 * 1024
BASE = "http://title.test/t/"


class _JumpingSelector(selectors.SelectSelector):
    """Never sleeps: a wait for the next timer moves the virtual clock there instead."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready:
            return ready
        if timeout is None:
            raise RuntimeError("the fake world deadlocked: nothing scheduled, nothing ready")
        self.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock (the outside world's clock, faked)."""

    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now


class FakeOrigin(HttpClient):
    """The network and the server: an HLS title (with title.json) answered at once."""

    protocol = "h1"

    def __init__(self, video: Video) -> None:
        super().__init__()
        seg_s = video.segment_s
        master = ["#EXTM3U", "#EXT-X-VERSION:7"]
        self.bodies: dict[str, bytes | int] = {}
        renditions = []
        for level, (bps, sizes) in enumerate(zip(video.bitrates_bps, video.sizes_bytes, strict=True)):
            master += [f"#EXT-X-STREAM-INF:BANDWIDTH={bps * 2},AVERAGE-BANDWIDTH={bps}", f"v{level}/index.m3u8"]
            media = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{seg_s:g}", "#EXT-X-PLAYLIST-TYPE:VOD",
                     '#EXT-X-MAP:URI="init.mp4"']
            for k, size in enumerate(sizes):
                media += [f"#EXTINF:{seg_s:.3f},", f"s{k}.m4s"]
                self.bodies[f"/t/v{level}/s{k}.m4s"] = size
            self.bodies[f"/t/v{level}/index.m3u8"] = "\n".join([*media, "#EXT-X-ENDLIST", ""]).encode()
            self.bodies[f"/t/v{level}/init.mp4"] = 600
            renditions.append({"kind": "video", "average_bitrate_bps": bps,
                               "segments": [{"size_bytes": s} for s in sizes]})
        self.bodies["/t/master.m3u8"] = "\n".join([*master, ""]).encode()
        self.bodies["/t/title.json"] = json.dumps({"segment_s": seg_s, "renditions": renditions}).encode()
        self.zeros = bytes(CHUNK)

    async def request(self, url: str, headers: dict[str, str], on_chunk: OnChunk, method: str = "GET") -> Reply:
        body = self.bodies.get(urlsplit(url).path)
        if body is None:
            return Reply(404, {}, "1.1")
        size = body if isinstance(body, int) else len(body)
        reply = Reply(200, {"content-length": str(size)}, "1.1")
        if isinstance(body, bytes):
            await on_chunk(body)
            return reply
        sent = 0
        while sent < size:
            n = min(CHUNK, size - sent)
            sent += n
            if not await on_chunk(self.zeros[:n]):
                break
        return reply


def play_in_virtual_time(video: Video, trace: Trace, abr: str, model: Model) -> SessionLog:
    loop = VirtualTimeLoop()
    try:
        # The simulator has no request deadline (a guard against servers that trickle forever).
        config = PlayConfig(url=BASE + "master.m3u8", abr=abr, trace=trace, model=model, cmcd=True,
                            request_deadline_s=1e6)
        return loop.run_until_complete(Session(config, client=FakeOrigin(video)).run())
    finally:
        loop.close()


@pytest.fixture(scope="module")
def envivio() -> Video:
    return load_video(str(DATA / "videos" / "envivio"))


@pytest.fixture(scope="module")
def traces() -> list[Trace]:
    fcc = sorted((DATA / "traces" / "fcc").iterdir())[:2]
    hsdpa = sorted((DATA / "traces" / "hsdpa").iterdir())[:1]
    return load_traces([*fcc, *hsdpa])


def assert_same_session(video: Video, trace: Trace, abr: str, model: Model) -> int:
    sim = run_session(video, trace, abr, model)
    log = play_in_virtual_time(video, trace, abr, model)
    assert log.error is None, log.error
    assert log.result is not None
    real = log.result
    assert [r.level for r in real.records] == [r.level for r in sim.records], (abr, trace.name)
    assert [r.time_s for r in real.records] == pytest.approx([r.time_s for r in sim.records], rel=1e-9)
    assert real.score == pytest.approx(sim.score, rel=1e-9, abs=1e-9)
    assert real.rebuffer_s == pytest.approx(sim.rebuffer_s, abs=1e-9)
    assert real.startup_s == pytest.approx(sim.startup_s, rel=1e-9)
    assert real.abandoned == sim.abandoned
    return sim.abandoned


@pytest.mark.parametrize("abr", ["bb", "bola", "dynamic", "throughput", "robustmpc", "marathon"])
def test_the_real_driver_makes_the_simulators_decisions(envivio: Video, traces: list[Trace], abr: str) -> None:
    for trace in traces:
        assert_same_session(envivio, trace, abr, default())


def test_abandonment_is_exercised_and_agrees(envivio: Video, traces: list[Trace]) -> None:
    # A small buffer makes throughput-based choices abandon on the FCC traces' drops.
    model = dataclasses.replace(default(12.0), startup_threshold_s=8.0)
    abandoned = sum(assert_same_session(envivio, t, name, model) for t in traces for name in ("throughput", "bola"))
    assert abandoned > 0


@pytest.mark.parametrize("option", [
    {"first_level": 4}, {"max_segments": 10}, {"max_buffer_s": 16.0}, {"abandonment": False},
    {"startup_threshold_s": None}, {"pensieve_quirks": True}, {"skip_first_in_score": True},
    {"use_trace_latency": False, "rtt_s": 0.2}, {"abandon_check_s": 0.1}, {"sleep_step_s": 0.5},
])
def test_every_model_option_applies_to_both_drivers(envivio: Video, traces: list[Trace], option: dict) -> None:
    model = dataclasses.replace(default(), **option)
    for abr in ("robustmpc", "bola"):
        assert_same_session(envivio, traces[0], abr, model)
    log = play_in_virtual_time(envivio, traces[0], "bola", model)
    assert log.result is not None
    if "max_segments" in option:
        assert len(log.result.records) == 10
        assert sum(1 for e in log.events if e["type"] == "request" and e["kind"] == "video") >= 10
    if "first_level" in option:  # asked for at level 4 (then perhaps abandoned lower)
        first = [e for e in log.events if e["type"] == "request" and e["kind"] == "video"][0]
        assert first["segment"] == 0 and first["level"] == 4
