"""BBA: buffer-based rate adaptation (Huang et al., SIGCOMM 2014), Pensieve's variant.

The level is a linear map of the buffer between a reservoir (5 s) and reservoir + cushion
(15 s): lowest below, highest above (hongzimao/pensieve ``test/bb.py``).
"""

from __future__ import annotations

from player_sim.abr.base import Abr, AbrContext, Decision, PlayerState, register

RESERVOIR_S = 5.0
CUSHION_S = 10.0


@register("bb", "Huang et al., A Buffer-Based Approach to Rate Adaptation, SIGCOMM 2014 (Pensieve's BB: reservoir 5 s, cushion 10 s)")
class BufferBased(Abr):
    """Buffer-based level choice."""

    def __init__(self, ctx: AbrContext, reservoir_s: float = RESERVOIR_S, cushion_s: float = CUSHION_S) -> None:
        super().__init__(ctx)
        self.reservoir_s = reservoir_s
        self.cushion_s = cushion_s
        self.top = ctx.video.levels - 1

    def choose(self, state: PlayerState) -> Decision:
        b = state.buffer_s
        if b < self.reservoir_s:
            return Decision(0)
        if b >= self.reservoir_s + self.cushion_s:
            return Decision(self.top)
        return Decision(int(self.top * (b - self.reservoir_s) / self.cushion_s))
