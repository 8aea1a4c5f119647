"""Exhaustive horizon planning for MPC, vectorised with numpy (pure).

For a predicted throughput, a start buffer and a horizon of ``n`` segments, every level
sequence (``levels ** n`` of them, in ``itertools.product`` order) is scored with QoE_lin.
Rebuffering over a sequence follows from the cumulative download time ``D_j``:
``R = max(0, max_j (D_j - b0 - seg_s * (j - 1)))`` (a Lindley recursion), so the whole
table is a handful of array operations instead of a Python loop per sequence (the
reference ``mpc.py`` takes 15-40 s per session; this takes milliseconds).
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

from player_sim.qoe import REBUFFER_PENALTY, SMOOTH_PENALTY
from player_sim.video import Video


class Planner:
    """Level-sequence tables for one video and horizon."""

    def __init__(self, video: Video, horizon: int) -> None:
        self.video = video
        self.horizon = horizon
        self.levels = video.levels
        self.kbps = np.array([b / 1000 for b in video.bitrates_bps])
        self.sizes_mb = np.zeros((video.levels, video.segments + horizon + 1))
        self.sizes_mb[:, : video.segments] = np.array(video.sizes_bytes, dtype=float) / 1e6
        self._combos: dict[int, np.ndarray] = {}
        self._cum: dict[tuple[int, int], np.ndarray] = {}
        self._keep: dict[tuple[int, int], np.ndarray] = {}
        self._pruned_cum: dict[tuple[int, int, int], tuple[np.ndarray, ...]] = {}
        self.monotone = bool(np.all(np.diff(np.array(video.sizes_bytes), axis=0) >= 0))
        """Whether every segment grows with the level (enables peak pruning)."""
        self._base: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def combos(self, n: int) -> np.ndarray:
        """All level sequences of length ``n`` in ``itertools.product`` order."""
        if n not in self._combos:
            self._combos[n] = np.array(list(itertools.product(range(self.levels), repeat=n)), dtype=np.int64).reshape(-1, n)
        return self._combos[n]

    def cumulative_mb(self, start: int, n: int) -> np.ndarray:
        """Cumulative megabytes, shape ``(n, sequences)``, of every sequence fetched from ``start``."""
        key = (start, n)
        if key not in self._cum:
            c = self.combos(n)
            idx = np.arange(start, start + n)
            # stored column-major (one contiguous row per position): fast per-position ops
            self._cum[key] = np.ascontiguousarray(np.cumsum(self.sizes_mb[c, idx[None, :]], axis=1).T)
        return self._cum[key]

    def bitrate_and_smooth(self, n: int, last_level: int) -> tuple[np.ndarray, np.ndarray]:
        """Per sequence: the bitrate sum and the switch penalty (Mbps) starting from ``last_level``."""
        key = (n, last_level)
        if key not in self._base:
            c = self.combos(n)
            rates = self.kbps[c]
            prev = np.concatenate([np.full((len(c), 1), self.kbps[last_level]), rates[:, :-1]], axis=1)
            # scaled to Mbps once, in mpc.py's order of operations
            self._base[key] = (rates.sum(axis=1) / 1000.0, SMOOTH_PENALTY * np.abs(rates - prev).sum(axis=1) / 1000.0)
        return self._base[key]

    def rewards(self, start: int, n: int, last_level: int, buffer_s: float, bandwidth_mbps: float,
                terminal_weight: float = 0.0, terminal_cap_s: float = 0.0, rtt_s: float = 0.0) -> np.ndarray:
        """QoE_lin of every sequence (with an optional value on the final buffer).

        ``rtt_s`` is added to every download (0: throughput already includes it, as in mpc.py).
        """
        bitsum, smooth = self.bitrate_and_smooth(n, last_level)
        return self._score(self.cumulative_mb(start, n), bitsum, smooth, n, buffer_s, bandwidth_mbps,
                           terminal_weight, terminal_cap_s, rtt_s)

    def _score(self, cum: np.ndarray, bitsum: np.ndarray, smooth: np.ndarray, n: int, buffer_s: float,
               bandwidth_mbps: float, terminal_weight: float, terminal_cap_s: float, rtt_s: float = 0.0) -> np.ndarray:
        seg_s = self.video.segment_s
        # max over prefixes j of (download time of the prefix - media available when it ends)
        worst = cum[0] - bandwidth_mbps * (buffer_s - rtt_s)
        for j in range(1, n):
            np.maximum(worst, cum[j] - bandwidth_mbps * (buffer_s + seg_s * j - rtt_s * (j + 1)), out=worst)
        rebuf = np.maximum(worst / bandwidth_mbps, 0.0)
        r = bitsum - REBUFFER_PENALTY * rebuf
        r -= smooth
        if terminal_weight:
            end_buffer = buffer_s + (seg_s - rtt_s) * n - cum[-1] / bandwidth_mbps + rebuf
            r = r + terminal_weight * np.minimum(end_buffer, terminal_cap_s)
        return r

    def _kept(self, n: int, last_level: int) -> np.ndarray:
        """Indices (ascending) of the sequences without an interior peak after ``last_level``.

        A level above both neighbours is strictly worse than the higher neighbour's level: the
        bitrate drops by d, the switch penalty by 2d and no segment gets bigger, so the QoE
        rises by d with no more rebuffering. Only valid when sizes grow with the level.
        """
        key = (n, last_level)
        if key not in self._keep:
            c = self.combos(n)
            seq = np.concatenate([np.full((len(c), 1), last_level), c], axis=1)
            peak = np.zeros(len(c), dtype=bool)
            for i in range(1, n):  # positions 0..n-2 of the plan have both neighbours
                peak |= (seq[:, i] > seq[:, i - 1]) & (seq[:, i] > seq[:, i + 1])
            self._keep[key] = np.flatnonzero(~peak)
        return self._keep[key]

    def _pruned(self, start: int, n: int, last_level: int) -> tuple[np.ndarray, ...]:
        key = (start, n, last_level)
        if key not in self._pruned_cum:
            keep = self._kept(n, last_level)
            bitsum, smooth = self.bitrate_and_smooth(n, last_level)
            cum = np.ascontiguousarray(self.cumulative_mb(start, n)[:, keep])
            self._pruned_cum[key] = (keep, cum, bitsum[keep], smooth[keep])
        return self._pruned_cum[key]

    def best_first_expected(self, start: int, n: int, last_level: int, buffer_s: float,
                            bandwidths_mbps: list[float], weights: list[float], terminal_weight: float = 0.0,
                            terminal_cap_s: float = 0.0, rtt_s: float = 0.0) -> int:
        """First level of the sequence with the best expected QoE over bandwidth scenarios."""
        if self.monotone:
            keep, cum, bitsum, smooth = self._pruned(start, n, last_level)
        else:
            keep = np.arange(len(self.combos(n)))
            cum = self.cumulative_mb(start, n)
            bitsum, smooth = self.bitrate_and_smooth(n, last_level)
        total = np.zeros(len(keep))
        for bw, w in zip(bandwidths_mbps, weights, strict=True):
            total += w * self._score(cum, bitsum, smooth, n, buffer_s, bw, terminal_weight, terminal_cap_s, rtt_s)
        best = keep[len(total) - 1 - int(np.argmax(total[::-1]))]
        return int(self.combos(n)[best, 0])

    def best_first(self, start: int, n: int, last_level: int, buffer_s: float, bandwidth_mbps: float,
                   terminal_weight: float = 0.0, terminal_cap_s: float = 0.0, rtt_s: float = 0.0) -> int:
        """First level of the best sequence; ties go to the last one in product order (mpc.py's ``>=``).

        Sequences with an interior peak are never best (:meth:`_kept`), so they are skipped
        when the video's sizes grow with the level; the answer is the same as a full search.
        """
        if self.monotone:
            keep, cum, bitsum, smooth = self._pruned(start, n, last_level)
            r = self._score(cum, bitsum, smooth, n, buffer_s, bandwidth_mbps, terminal_weight, terminal_cap_s, rtt_s)
            best = keep[len(r) - 1 - int(np.argmax(r[::-1]))]
            return int(self.combos(n)[best, 0])
        r = self.rewards(start, n, last_level, buffer_s, bandwidth_mbps, terminal_weight, terminal_cap_s, rtt_s)
        best = len(r) - 1 - int(np.argmax(r[::-1]))
        return int(self.combos(n)[best, 0])


@lru_cache(maxsize=16)
def planner_for(video: Video, horizon: int) -> Planner:
    """A shared planner per (video, horizon): the tables are built once per process."""
    return Planner(video, horizon)
