"""Draft: a tunable MPC for experiments (replaced by the final design)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from player_sim.abr.base import Abr, AbrContext, Decision, Download, PlayerState, register
from player_sim.abr.planner import planner_for


@dataclass(frozen=True)
class Params:
    horizon: int = 5
    past: int = 5
    err_past: int = 5
    alpha: float = 1.0
    err_stat: str = "max"
    mean: str = "harmonic"
    terminal_weight: float = 0.0
    terminal_cap_s: float = 20.0
    use_rtt: bool = False
    scenarios: int = 0
    scen_scale: float = 1.0


class Tunable(Abr):
    params = Params()

    def __init__(self, ctx: AbrContext) -> None:
        super().__init__(ctx)
        p = self.params
        self.planner = planner_for(ctx.video, p.horizon)
        self.tputs: list[float] = []
        self.errors: list[float] = []
        self.last_est: float | None = None
        self.rtt = 0.0

    def _estimate(self) -> float:
        p = self.params
        recent = self.tputs[-p.past:]
        if p.mean == "harmonic":
            return len(recent) / sum(1 / x for x in recent)
        return float(np.mean(recent))

    def choose(self, state: PlayerState) -> Decision:
        if not self.tputs:
            return Decision(0)
        p = self.params
        n = min(p.horizon, self.ctx.segments - state.segment)
        if p.scenarios:
            xs = [x * p.scen_scale for x in self.tputs[-p.scenarios:]]
            level = self.planner.best_first_expected(state.segment, n, state.last_level, state.buffer_s, xs,
                                                     [1 / len(xs)] * len(xs), terminal_weight=p.terminal_weight,
                                                     terminal_cap_s=p.terminal_cap_s, rtt_s=self.rtt if p.use_rtt else 0.0)
            return Decision(level)
        errs = self.errors[-p.err_past:]
        e = max(errs) if p.err_stat == "max" else float(np.mean(errs))
        bw = self._estimate() / (1 + p.alpha * e)
        level = self.planner.best_first(state.segment, n, state.last_level, state.buffer_s, bw,
                                        terminal_weight=p.terminal_weight, terminal_cap_s=p.terminal_cap_s,
                                        rtt_s=self.rtt if p.use_rtt else 0.0)
        return Decision(level)

    def report_download(self, d: Download) -> None:
        if d.abandoned or d.time_s <= 0:
            return
        p = self.params
        t = d.time_s - d.latency_s if p.use_rtt else d.time_s
        x = d.size_bytes / max(t, 1e-3) / 1e6
        self.rtt = d.latency_s
        if self.tputs:
            est = self._estimate()
            self.errors.append(abs(est - x) / x)
        else:
            self.errors.append(0.0)
        self.tputs.append(x)


@register("ours", "draft")
class Ours(Tunable):
    pass


@dataclass(frozen=True)
class SdpParams:
    horizon: int = 10
    scenarios: int = 8
    scale: float = 1.0
    bin_s: float = 0.5
    terminal_weight: float = 0.1
    terminal_cap_s: float = 30.0
    use_rtt: bool = True
    recency: float = 1.0
    persistent: bool = False
    drop_weight: float = 0.0
    drop_factor: float = 0.5
    drop_base: str = "harmonic"
    pad_n: int = 0
    rho: float = 1.0
    pad_factor: float = 0.5


class Sdp(Abr):
    params = SdpParams()

    def __init__(self, ctx: AbrContext) -> None:
        super().__init__(ctx)
        p = self.params
        v = ctx.video
        self.sizes = np.array(v.sizes_bytes, dtype=float) / 1e6
        self.rate = np.array(v.bitrates_bps, dtype=float) / 1e6
        self.switch = np.abs(self.rate[:, None] - self.rate[None, :])  # [q_prev, q_next]
        self.grid = np.arange(0.0, ctx.max_buffer_s + p.bin_s / 2, p.bin_s)
        self.tputs: list[float] = []
        self.rtt = 0.0

    def choose(self, state: PlayerState) -> Decision:
        if not self.tputs:
            return Decision(0)
        p = self.params
        xs = np.array(self.tputs[-p.scenarios:]) * p.scale
        w = p.recency ** np.arange(len(xs))[::-1]
        w = w / w.sum()
        if p.pad_n and len(xs) < p.pad_n:
            # few samples yet: pessimistic pseudo-samples stand for the ones still missing
            miss = p.pad_n - len(xs)
            xs = np.append(np.full(miss, float(np.min(xs)) * p.pad_factor), xs)
            w = np.full(len(xs), 1 / len(xs))
        if p.drop_weight > 0:
            base = len(xs) / np.sum(1 / xs) if p.drop_base == "harmonic" else float(np.min(xs))
            xs = np.append(xs, base * p.drop_factor)
            w = np.append(w * (1 - p.drop_weight), p.drop_weight)
        seg = self.video.segment_s
        cap = self.ctx.max_buffer_s
        rtt = self.rtt if p.use_rtt else 0.0
        grid = self.grid
        nb = len(grid)
        H = min(p.horizon, self.ctx.segments - state.segment)
        V = p.terminal_weight * np.minimum(grid, p.terminal_cap_s)[None, :].repeat(len(self.rate), 0)
        L = len(self.rate)
        if p.persistent:
            return Decision(self._persistent(state, xs, w, H))
        for h in range(H - 1, 0, -1):
            c = state.segment + h
            d = self.sizes[:, c][:, None, None] / xs[None, None, :] + rtt  # (L,1,K)
            b = grid[None, :, None]
            rebuf = np.maximum(d - b, 0.0)
            b2 = np.minimum(np.maximum(b - d, 0.0) + seg, cap)
            f = b2 / p.bin_s
            i0 = np.minimum(f.astype(np.int64), nb - 2)
            fr = f - i0
            rows = np.arange(L)[:, None, None]
            vn = V[rows, i0] * (1 - fr) + V[rows, i0 + 1] * fr
            W = self.rate[:, None] - 4.3 * (rebuf @ w) + (vn @ w)  # (L_next, B)
            V = (W[None, :, :] - self.switch[:, :, None]).max(axis=1)  # (L_prev, B)
        c = state.segment
        d = self.sizes[:, c][:, None] / xs[None, :] + rtt  # (L,K)
        b0 = state.buffer_s
        rebuf = np.maximum(d - b0, 0.0)
        b2 = np.minimum(np.maximum(b0 - d, 0.0) + seg, cap)
        if H > 1:
            vn = np.stack([np.interp(b2[q], grid, V[q]) for q in range(L)])
        else:
            vn = p.terminal_weight * np.minimum(b2, p.terminal_cap_s)
        total = self.rate - 4.3 * (rebuf @ w) + vn @ w - self.switch[state.last_level]
        return Decision(int(np.argmax(total)))

    def _persistent(self, state: PlayerState, xs: np.ndarray, w: np.ndarray, H: int) -> int:
        p = self.params
        seg = self.video.segment_s
        cap = self.ctx.max_buffer_s
        rtt = self.rtt if p.use_rtt else 0.0
        grid = self.grid
        nb = len(grid)
        L = len(self.rate)
        K = len(xs)
        V = np.broadcast_to(p.terminal_weight * np.minimum(grid, p.terminal_cap_s), (K, L, nb)).copy()
        b = grid[None, None, :]
        krows = np.arange(K)[:, None, None]
        lrows = np.arange(L)[None, :, None]
        for h in range(H - 1, 0, -1):
            c = state.segment + h
            d = self.sizes[:, c][None, :, None] / xs[:, None, None] + rtt  # (K,L,1)
            rebuf = np.maximum(d - b, 0.0)
            b2 = np.minimum(np.maximum(b - d, 0.0) + seg, cap)
            f = b2 / p.bin_s
            i0 = np.minimum(f.astype(np.int64), nb - 2)
            fr = f - i0
            vn = V[krows, lrows, i0] * (1 - fr) + V[krows, lrows, i0 + 1] * fr
            W = self.rate[None, :, None] - 4.3 * rebuf + vn  # (K, L_next, B)
            V = (W[:, None, :, :] - self.switch[None, :, :, None]).max(axis=2)  # (K, L_prev, B)
            if p.rho < 1:
                V = p.rho * V + (1 - p.rho) * np.tensordot(w, V, 1)[None]
        c = state.segment
        d = self.sizes[:, c][None, :] / xs[:, None] + rtt  # (K,L)
        b0 = state.buffer_s
        rebuf = np.maximum(d - b0, 0.0)
        b2 = np.minimum(np.maximum(b0 - d, 0.0) + seg, cap)
        if H > 1:
            f = b2 / p.bin_s
            i0 = np.minimum(f.astype(np.int64), nb - 2)
            fr = f - i0
            kk = np.arange(K)[:, None]
            ll = np.arange(L)[None, :]
            vn = V[kk, ll, i0] * (1 - fr) + V[kk, ll, i0 + 1] * fr
        else:
            vn = p.terminal_weight * np.minimum(b2, p.terminal_cap_s)
        total = w @ (self.rate[None, :] - 4.3 * rebuf + vn) - self.switch[state.last_level]
        return int(np.argmax(total))

    def report_download(self, d: Download) -> None:
        if d.abandoned or d.time_s <= 0:
            return
        t = d.time_s - d.latency_s if self.params.use_rtt else d.time_s
        self.tputs.append(d.size_bytes / max(t, 1e-3) / 1e6)
        self.rtt = d.latency_s


@register("sdp", "draft")
class SdpReg(Sdp):
    pass
