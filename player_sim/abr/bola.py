"""BOLA and BOLA-E (Spiteri et al., INFOCOM 2016; ACM TOMM / MMSys 2018).

BOLA picks the level that maximises ``(V * (v_m + gamma*p) - Q) / S_m`` where ``v_m`` is the
log utility of level ``m``, ``Q`` the buffer in seconds and ``S_m`` the segment size
(2016, eq. 7, with sabre's parameters ``gamma*p = 5`` and ``V`` from the buffer cap). When
every score is negative the buffer is above target and BOLA waits.

BOLA-E (2018, "From Theory to Practice") adds a dynamic ``V`` that grows with the segments
played (a virtual placeholder buffer at startup) and BOLA-O's oscillation control: an
upward switch is capped by the last measured throughput (never below the previous level).
"""

from __future__ import annotations

import math

from player_sim.abr.base import Abr, AbrContext, Decision, Download, PlayerState, register
from player_sim.abr.throughput import level_for

GAMMA_P = 5.0


@register("bola", "Spiteri, Urgaonkar, Sitaraman, BOLA: Near-Optimal Bitrate Adaptation for Online Videos, INFOCOM 2016")
class Bola(Abr):
    """Basic BOLA (Lyapunov buffer control)."""

    dynamic_v = False
    oscillation_control = False

    def __init__(self, ctx: AbrContext) -> None:
        super().__init__(ctx)
        rates = ctx.video.bitrates_bps
        self.utilities = [math.log(b / rates[0]) for b in rates]
        self.seg_s = ctx.video.segment_s
        self.last_throughput_bps: float | None = None

    def _vp(self, segment: int) -> float:
        cap = self.ctx.max_buffer_s
        if self.dynamic_v:
            # BOLA-E: the target grows with the segments fetched (and shrinks near the end).
            t = min(segment + 1, self.ctx.segments - segment)
            cap = min(cap, max(t / 2, 3) * self.seg_s)
        return max(cap - self.seg_s, self.seg_s) / (self.utilities[-1] + GAMMA_P)

    def choose(self, state: PlayerState) -> Decision:
        vp = self._vp(state.segment)
        q = state.buffer_s
        best, best_score = 0, -math.inf
        for m, v in enumerate(self.utilities):
            s = (vp * (v + GAMMA_P) - q) / self.video.bitrates_bps[m]
            if s > best_score:
                best, best_score = m, s
        if self.oscillation_control and best > state.last_level and self.last_throughput_bps is not None:
            sustainable = level_for(self.video.bitrates_bps, self.last_throughput_bps)
            best = max(min(best, sustainable), state.last_level)
        delay = max(0.0, q - vp * (self.utilities[best] + GAMMA_P))
        return Decision(best, delay)

    def report_download(self, download: Download) -> None:
        if not download.abandoned:
            self.last_throughput_bps = download.throughput_bps


@register("bola-e", "Spiteri, Sitaraman, Sparacio, From Theory to Practice: Improving Bitrate Adaptation in the DASH Reference Player, MMSys 2018 (BOLA-E)")
class BolaE(Bola):
    """BOLA with a dynamic V (placeholder) and BOLA-O oscillation control."""

    dynamic_v = True
    oscillation_control = True
