"""dash.js DYNAMIC (Spiteri, Sitaraman, Sparacio, MMSys 2018; dash.js ``AbrController``).

Throughput rule while the buffer is short, BOLA once it is long: BOLA takes over when the
buffer reaches ``stableBufferTime`` (12 s in dash.js) and hands back below half of it.
The throughput rule here is dash.js's: a sliding estimate (the EWMA of
:mod:`player_sim.abr.throughput`) times a 0.9 bandwidth safety factor.
"""

from __future__ import annotations

from player_sim.abr.base import Abr, AbrContext, Decision, Download, PlayerState, register
from player_sim.abr.bola import BolaE
from player_sim.abr.throughput import EwmaEstimator, level_for

SWITCH_ON_S = 12.0
SAFETY = 0.9


@register("dynamic", "dash.js DYNAMIC: throughput rule below a buffer threshold, BOLA above (Spiteri et al., MMSys 2018)")
class Dynamic(Abr):
    """Throughput when the buffer is low, BOLA-E when it is high (with hysteresis)."""

    def __init__(self, ctx: AbrContext) -> None:
        super().__init__(ctx)
        self.bola = BolaE(ctx)
        self.est = EwmaEstimator()
        self.use_bola = False

    def choose(self, state: PlayerState) -> Decision:
        if self.use_bola and state.buffer_s < SWITCH_ON_S / 2:
            self.use_bola = False
        elif not self.use_bola and state.buffer_s >= SWITCH_ON_S:
            self.use_bola = True
        if self.use_bola:
            return self.bola.choose(state)
        return Decision(level_for(self.video.bitrates_bps, SAFETY * self.est.estimate_bps()))

    def report_download(self, download: Download) -> None:
        self.bola.report_download(download)
        if not download.abandoned:
            self.est.sample(download)
