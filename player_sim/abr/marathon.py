"""Marathon: stochastic dynamic programming to the end of the video (abrstack's own algorithm).

robustMPC (Yin et al. 2015) plans 5 segments ahead for one pessimistic throughput. Marathon
plans every remaining segment, like a runner pacing a whole race, for a *distribution* of
throughputs, and prices the one risk a short plan never sees:

1. **Scenarios, not a point estimate.** The last 5 transfer throughputs (size over time
   to last byte minus the request latency), weighted 0.9 per segment of age, are equally
   plausible next throughputs. While fewer than 4 are known, pessimistic pseudo-samples
   (0.8 of the smallest seen) stand in for the missing ones. A *dip* scenario, the smallest
   throughput of the last 20 segments, gets weight 0.08: on a steady link it costs nothing,
   on a volatile one it keeps a cushion.
2. **Outage-aware rebuffering.** Any download may meet an outage of 10 s with probability
   0.02; the expected extra stall, 0.02 * (max(d + 10 - b, 0) - max(d - b, 0)), is charged
   at every step. It is zero once the buffer ``b`` covers the download ``d`` plus the outage,
   so it acts as a buffer-dependent safety margin rather than a throughput discount.
3. **The whole horizon.** A backward DP over (level, buffer on a 1-s grid) from the last
   segment to the next one, throughputs i.i.d. across steps from the scenarios, buffer
   capped at the player's maximum. Buffer left when the video ends is worth nothing, so
   the plan builds a cushion early and spends it late, as the offline optimum does.
4. The decision uses the exact current buffer; the QoE is the table's QoE_lin
   (bitrate - 4.3 * rebuffer - |switch|, Mbps).

Cost: about ``remaining segments x levels^2 x grid`` operations per decision, a few
milliseconds, all in numpy. No neural network and nothing learned; the constants above
were tuned on a quarter of the FCC traces and half of the HSDPA traces (README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from player_sim.abr.base import Abr, AbrContext, Decision, Download, PlayerState, register
from player_sim.qoe import REBUFFER_PENALTY, SMOOTH_PENALTY


@dataclass(frozen=True)
class MarathonConfig:
    """Marathon's constants (defaults as tuned; see the module docstring)."""

    scenarios: int = 5
    """Recent throughputs used as scenarios."""
    recency: float = 0.9
    """Weight factor per segment of age."""
    pad_to: int = 4
    """Pseudo-samples fill the scenario set up to this many while the session is young."""
    pad_factor: float = 0.8
    """Pseudo-samples are this fraction of the smallest throughput seen."""
    dip_window: int = 20
    """The dip scenario is the smallest throughput of this many recent segments."""
    dip_weight: float = 0.08
    """Probability of the dip scenario."""
    outage_p: float = 0.02
    """Probability that a download meets an outage."""
    outage_s: float = 10.0
    """Length of that outage, seconds."""
    grid_s: float = 1.0
    """Buffer grid step of the DP, seconds."""
    horizon: int = 48
    """At most this many segments are planned (the rest of a 48-segment session)."""


@register("marathon", "abrstack's own: stochastic DP over the rest of the video with throughput scenarios and outage-aware rebuffering (player_sim/abr/marathon.py)")
class Marathon(Abr):
    """Stochastic dynamic programming to the end of the video."""

    config = MarathonConfig()

    def __init__(self, ctx: AbrContext) -> None:
        super().__init__(ctx)
        v = ctx.video
        self.sizes_mb = np.array(v.sizes_bytes, dtype=float) / 1e6
        self.rate_mbps = np.array(v.bitrates_bps, dtype=float) / 1e6
        # switch penalty [previous level, next level]
        self.switch = SMOOTH_PENALTY * np.abs(self.rate_mbps[:, None] - self.rate_mbps[None, :])
        self.grid = np.arange(0.0, ctx.max_buffer_s + self.config.grid_s / 2, self.config.grid_s)
        self.throughputs: list[float] = []
        """Transfer throughputs seen, MB/s."""
        self.latency_s = 0.0

    def scenarios(self) -> tuple[np.ndarray, np.ndarray]:
        """Throughput scenarios (MB/s) and their probabilities."""
        c = self.config
        xs = np.array(self.throughputs[-c.scenarios :])
        w = c.recency ** np.arange(len(xs))[::-1]
        if len(xs) < c.pad_to:
            xs = np.append(np.full(c.pad_to - len(xs), xs.min() * c.pad_factor), xs)
            w = np.ones(len(xs))
        w = w / w.sum() * (1 - c.dip_weight)
        dip = min(self.throughputs[-c.dip_window :])
        return np.append(xs, dip), np.append(w, c.dip_weight)

    def _stall(self, d: np.ndarray, b: np.ndarray | float) -> np.ndarray:
        """Expected stall of downloads taking ``d`` from buffer ``b``, outages included."""
        p, o = self.config.outage_p, self.config.outage_s
        return (1 - p) * np.maximum(d - b, 0.0) + p * np.maximum(d + o - b, 0.0)

    def choose(self, state: PlayerState) -> Decision:
        if not self.throughputs:
            return Decision(0)
        xs, w = self.scenarios()
        c = self.config
        seg_s = self.video.segment_s
        cap = self.ctx.max_buffer_s
        grid = self.grid
        nb = len(grid)
        levels = len(self.rate_mbps)
        rows = np.arange(levels)[:, None, None]
        horizon = min(c.horizon, self.ctx.segments - state.segment)
        value = np.zeros((levels, nb))  # value of (previous level, buffer) after the last segment
        for h in range(horizon - 1, 0, -1):
            seg = state.segment + h
            d = self.sizes_mb[:, seg][:, None, None] / xs[None, None, :] + self.latency_s  # (L,1,K)
            b = grid[None, :, None]
            stall = self._stall(d, b)
            after = np.minimum(np.maximum(b - d, 0.0) + seg_s, cap)
            f = after / c.grid_s
            i0 = np.minimum(f.astype(np.int64), nb - 2)
            fr = f - i0
            future = value[rows, i0] * (1 - fr) + value[rows, i0 + 1] * fr
            gain = self.rate_mbps[:, None] - REBUFFER_PENALTY * (stall @ w) + future @ w  # (L_next, B)
            value = (gain[None, :, :] - self.switch[:, :, None]).max(axis=1)  # (L_prev, B)
        d = self.sizes_mb[:, state.segment][:, None] / xs[None, :] + self.latency_s  # (L,K)
        b0 = state.buffer_s
        stall = self._stall(d, b0)
        after = np.minimum(np.maximum(b0 - d, 0.0) + seg_s, cap)
        future = np.stack([np.interp(after[q], grid, value[q]) for q in range(levels)])
        total = self.rate_mbps - REBUFFER_PENALTY * (stall @ w) + future @ w - self.switch[state.last_level]
        return Decision(int(np.argmax(total)))

    def report_download(self, download: Download) -> None:
        if download.abandoned or download.time_s <= 0:
            return
        transfer_s = max(download.time_s - download.latency_s, 1e-3)
        self.throughputs.append(download.size_bytes / transfer_s / 1e6)
        self.latency_s = download.latency_s
