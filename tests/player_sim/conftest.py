"""Fixtures for the player simulator tests: tiny hand-made videos and traces."""

from __future__ import annotations

from pathlib import Path

import pytest

from player_sim.traces import Trace, parse_cooked
from player_sim.video import Video, make_video

SHARED = Path(__file__).resolve().parents[2] / "data"


def constant_trace(mbps: float, seconds: int = 200, name: str = "const") -> Trace:
    """A cooked trace at a constant rate."""
    return parse_cooked(name, "\n".join(f"{t}.0\t{mbps}" for t in range(seconds + 1)))


@pytest.fixture
def tiny_video() -> Video:
    """3 levels (1, 2, 3 Mbps), five 4-s segments whose sizes match the bitrates exactly."""
    rates = [1_000_000, 2_000_000, 3_000_000]
    return make_video("tiny", rates, 4.0, [[r * 4 // 8] * 5 for r in rates])


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data shipped in the repo (``data/``: traces, videos)."""
    return SHARED
