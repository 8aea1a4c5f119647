"""robustMPC (Yin, Jindal, Sekar, Sinopoli, SIGCOMM 2015) as in Pensieve's ``test/mpc.py``.

Before each segment: predict throughput as the harmonic mean of the last 5 measured
throughputs divided by ``1 + max relative error`` of the last 5 predictions, then plan 5
segments ahead by exhaustive search over level sequences for QoE_lin, and fetch the first.

With ``pensieve_quirks`` (the pensieve model) the reference script's quirks are kept
(data README): the planner prices the segments one index ahead of those it plans for
(hongzimao/pensieve#51), ties go to the last best plan in ``itertools.product`` order, the
error compares the previous *undiscounted* estimate with the measured throughput (which
includes the 80-ms RTT), and the planned buffer has no cap. ``robustmpc-fixed`` keeps all
but the index quirk.
"""

from __future__ import annotations

from player_sim.abr.base import Abr, AbrContext, Decision, Download, PlayerState, register
from player_sim.abr.planner import planner_for

HORIZON = 5
PAST = 5


class RobustEstimator:
    """Harmonic mean of the last 5 throughputs, discounted by the max recent error."""

    def __init__(self, past: int = PAST) -> None:
        self.past = past
        self.throughputs: list[float] = []
        self.errors: list[float] = []
        self.estimates: list[float] = []

    def sample(self, throughput_mbps: float) -> None:
        """Record a measured throughput (MB/s or any unit, consistently)."""
        err = abs(self.estimates[-1] - throughput_mbps) / throughput_mbps if self.estimates else 0.0
        self.errors.append(err)
        self.throughputs.append(throughput_mbps)
        recent = self.throughputs[-self.past :]
        harmonic = len(recent) / sum(1 / x for x in recent)
        self.estimates.append(harmonic)
        if len(self.errors) > 4 * self.past:  # only the recent ones are ever read
            del self.errors[: -self.past], self.throughputs[: -self.past], self.estimates[: -self.past]

    def harmonic(self) -> float:
        """Latest harmonic-mean estimate."""
        return self.estimates[-1]

    def max_error(self) -> float:
        """Largest relative error among the last predictions."""
        return max(self.errors[-self.past :])

    def robust(self) -> float:
        """The discounted estimate robustMPC plans with."""
        return self.harmonic() / (1 + self.max_error())


@register("robustmpc", "Yin et al., A Control-Theoretic Approach for Dynamic Adaptive Video Streaming over HTTP, SIGCOMM 2015 (as in Pensieve's test/mpc.py)")
class RobustMpc(Abr):
    """robustMPC; the chunk-index quirk follows ``ctx.pensieve_quirks`` unless ``fix_index``."""

    fix_index = False

    def __init__(self, ctx: AbrContext) -> None:
        super().__init__(ctx)
        self.planner = planner_for(ctx.video, HORIZON)
        self.est = RobustEstimator()
        self.index_ahead = ctx.pensieve_quirks and not self.fix_index
        if ctx.pensieve_quirks and ctx.carried is not None:
            # mpc.py's past_errors / past_bandwidth_ests are globals that outlive a session
            # (its throughput history is reset, they are not).
            self.est.errors, self.est.estimates = list(ctx.carried[0]), list(ctx.carried[1])

    def choose(self, state: PlayerState) -> Decision:
        if not self.est.estimates:
            return Decision(0)
        n = min(HORIZON, self.ctx.segments - state.segment)
        start = state.segment + 1 if self.index_ahead else state.segment
        level = self.planner.best_first(start, n, state.last_level, state.buffer_s, self.est.robust())
        return Decision(level)

    def report_download(self, download: Download) -> None:
        if not download.abandoned and download.time_s > 0:
            self.est.sample(download.size_bytes / download.time_s / 1e6)

    def handover(self) -> tuple[list[float], list[float]] | None:
        if not self.ctx.pensieve_quirks:
            return None
        return self.est.errors[-PAST:], self.est.estimates[-1:]


@register("robustmpc-fixed", "robustMPC (Yin et al. 2015) with Pensieve's chunk-index quirk corrected (hongzimao/pensieve#51)")
class RobustMpcFixed(RobustMpc):
    """robustMPC pricing the segments it actually plans for."""

    fix_index = True
