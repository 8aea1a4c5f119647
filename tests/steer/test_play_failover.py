"""`abr play` follows content steering: a headless session through the fleet keeps playing
when the edge it uses is SIGKILLed (it penalises that pathway and moves to the next at once,
as hls.js does), for HLS and for DASH."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from player_sim.player import PlayConfig, Session
from player_sim.traces import Trace
from steer.testing import LocalFleet


@pytest.mark.parametrize(("manifest", "hang"), [("master.m3u8", False), ("manifest.mpd", False),
                                               ("master.m3u8", True)])
def test_session_survives_its_edge_killed(tiny_title: Any, tmp_path: Path, manifest: str,
                                          hang: bool) -> None:
    """SIGKILL: the next request is refused and the session moves at once. SIGSTOP (a hung
    edge: the request just waits): the session moves when the steering answers drop the edge
    (heartbeats stop) and gives up its request in flight, long before the read timeout."""
    with LocalFleet(tiny_title.media_dir, tmp_path, edges=2, ttl_s=2) as fleet:
        trace = Trace("const-700k", 0.0, (600.0,), (700_000,), (0.01,))   # ~8 s of playback
        session = Session(PlayConfig(url=f"{fleet.steer_url}/steered/media/tiny/{manifest}",
                                     abr="bola", trace=trace))
        killed: list[str] = []

        def kill_when_playing() -> None:
            for _ in range(200):
                segs = [e for e in session.log.events if e["type"] == "request"
                        and e.get("kind") == "video"]
                if len(segs) >= 1 and session.steering is not None:
                    killed.append(session.steering.current)
                    (fleet.hang if hang else fleet.kill)(killed[0])
                    return
                threading.Event().wait(0.05)

        killer = threading.Thread(target=kill_when_playing)
        killer.start()
        log = asyncio.run(session.run())
        killer.join()
        assert killed, "the session never started"
        assert log.error is None, log.error
        assert log.result is not None and len(log.result.records) == 4
        moves = [e for e in log.events if e["type"] == "pathway_moved"]
        assert moves and moves[0]["from"] == killed[0] and moves[0]["to"] != killed[0]
        after = [e for e in log.events if e["type"] == "request" and e["t_s"] > moves[0]["t_s"]
                 and e.get("kind") in ("video", "audio")]
        assert after and not any(e["url"].startswith(fleet.edges[killed[0]]) for e in after)
        assert log.result.rebuffer_s <= (4.0 if hang else 1.0), log.result.rebuffer_s
        if hang:
            assert moves[0]["reason"] == "steering"
