"""Throughput rule with hls.js's EWMA estimator (hls.js ``ewma-bandwidth-estimator.ts``).

Two exponentially weighted moving averages of segment throughput, weighted by download
time, with half-lives of 3 s (fast) and 9 s (slow); the estimate is the smaller of the two.
A level is chosen if its bitrate fits under 0.95 of the estimate, or under 0.7 of it when
it is above the current level (hls.js ``abrBandWidthFactor`` / ``abrBandWidthUpFactor``).
"""

from __future__ import annotations

import math

from player_sim.abr.base import Abr, AbrContext, Decision, Download, PlayerState, register

DEFAULT_ESTIMATE_BPS = 500_000.0  # hls.js abrEwmaDefaultEstimate


class Ewma:
    """hls.js EWMA with zero-bias correction; weights are seconds of download."""

    def __init__(self, half_life_s: float) -> None:
        self.alpha = math.exp(math.log(0.5) / half_life_s)
        self.estimate = 0.0
        self.total_weight = 0.0

    def sample(self, weight_s: float, value: float) -> None:
        """Add one observation."""
        adj = self.alpha**weight_s
        self.estimate = value * (1 - adj) + adj * self.estimate
        self.total_weight += weight_s

    def get(self) -> float:
        """Bias-corrected estimate."""
        zero_factor = 1 - self.alpha**self.total_weight
        return self.estimate / zero_factor if zero_factor > 0 else self.estimate


class EwmaEstimator:
    """min(fast, slow) EWMA of throughput (hls.js)."""

    def __init__(self, fast_s: float = 3.0, slow_s: float = 9.0, default_bps: float = DEFAULT_ESTIMATE_BPS) -> None:
        self.fast = Ewma(fast_s)
        self.slow = Ewma(slow_s)
        self.default_bps = default_bps
        self.samples = 0

    def sample(self, download: Download) -> None:
        """Add a download's throughput, weighted by its duration."""
        if download.time_s <= 0:
            return
        w = max(download.time_s, 0.001)
        self.fast.sample(w, download.throughput_bps)
        self.slow.sample(w, download.throughput_bps)
        self.samples += 1

    def estimate_bps(self) -> float:
        """Current estimate (the default before any sample)."""
        if self.samples == 0:
            return self.default_bps
        return min(self.fast.get(), self.slow.get())


def level_for(bitrates_bps: tuple[int, ...], budget_bps: float) -> int:
    """Highest level whose bitrate is at most ``budget_bps`` (0 if none)."""
    level = 0
    for i, b in enumerate(bitrates_bps):
        if b <= budget_bps:
            level = i
    return level


@register("throughput", "hls.js EWMA throughput rule (fast/slow half-lives 3/9 s, factors 0.95 and 0.7 up)")
class Throughput(Abr):
    """hls.js-style throughput rule."""

    def __init__(self, ctx: AbrContext, factor: float = 0.95, up_factor: float = 0.7) -> None:
        super().__init__(ctx)
        self.est = EwmaEstimator()
        self.factor = factor
        self.up_factor = up_factor

    def choose(self, state: PlayerState) -> Decision:
        bw = self.est.estimate_bps()
        rates = self.video.bitrates_bps
        level = 0
        for i, b in enumerate(rates):
            f = self.up_factor if i > state.last_level else self.factor
            if b <= f * bw:
                level = i
        return Decision(level)

    def report_download(self, download: Download) -> None:
        if not download.abandoned:
            self.est.sample(download)
