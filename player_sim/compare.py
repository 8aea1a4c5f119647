"""`--compare h1,h2,h3`: every protocol on the same trace and edge, several sessions each.

Order: round ``r`` plays the protocols in the given order when ``r`` is even and reversed when
it is odd (h1 h2 h3 h3 h2 h1 ...), so that a drift of the machine or the cache over the run
does not favour one protocol. Cache state: one untimed warm-up session (the first protocol)
runs before the measured rounds, so every measured session meets a warm edge; the hit ratio
of each protocol is reported beside its QoE. Means carry a 95% Student-t confidence interval;
two protocols whose intervals overlap are reported as inside the noise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Two-sided 95% Student t quantiles for 1..30 degrees of freedom (normal beyond).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042)
METRICS = ("qoe_per_chunk", "bitrate_kbps_mean", "rebuffer_s_mean", "startup_s_mean")


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% confidence interval."""

    mean: float
    """Sample mean."""
    half_width: float
    """Half the interval's width (inf with one sample)."""
    n: int
    """Number of samples."""

    def overlaps(self, other: Interval) -> bool:
        """True when the two intervals share a point (the difference is inside the noise)."""
        return abs(self.mean - other.mean) <= self.half_width + other.half_width


def interval(values: list[float]) -> Interval:
    """Mean and 95% t interval of ``values`` (at least one)."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return Interval(mean, math.inf, n)
    t = _T95[n - 2] if n - 1 <= len(_T95) else 1.96
    return Interval(mean, t * statistics.stdev(values) / math.sqrt(n), n)


def schedule(protocols: list[str], rounds: int) -> list[str]:
    """Alternating order: forward on even rounds, reversed on odd ones."""
    out: list[str] = []
    for r in range(rounds):
        out.extend(protocols if r % 2 == 0 else reversed(protocols))
    return out


def summarise(samples: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Interval]]:
    """Per protocol, per metric: the interval over its sessions' summaries."""
    return {p: {m: interval([float(s[m]) for s in rows]) for m in METRICS} for p, rows in samples.items() if rows}


def verdicts(stats: dict[str, dict[str, Interval]], metric: str = "qoe_per_chunk") -> list[str]:
    """One sentence per pair of protocols on ``metric``."""
    names = sorted(stats)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            x, y = stats[a][metric], stats[b][metric]
            if x.overlaps(y):
                out.append(f"{a} vs {b}: {metric} {x.mean:.3f} vs {y.mean:.3f}, inside the noise (95% intervals overlap)")
            else:
                hi = a if x.mean > y.mean else b
                out.append(f"{a} vs {b}: {metric} {x.mean:.3f} vs {y.mean:.3f}, {hi} higher beyond the noise")
    return out


def table(stats: dict[str, dict[str, Interval]], hit_ratio: dict[str, float | None]) -> str:
    """The comparison as text: mean ± half-width per metric."""
    head = f"{'protocol':<9} {'n':>3} " + " ".join(f"{m:>22}" for m in METRICS) + f" {'hit %':>6}"
    lines = [head]
    for p, row in stats.items():
        cells = " ".join(f"{row[m].mean:>11.3f} ± {row[m].half_width:<8.3f}" for m in METRICS)
        hr = hit_ratio.get(p)
        lines.append(f"{p:<9} {row[METRICS[0]].n:>3} {cells} {'' if hr is None else f'{100 * hr:6.1f}'}")
    return "\n".join(lines)


def plot(stats: dict[str, dict[str, Interval]], path: Path, title: str) -> Path:
    """Bars of each metric's mean with 95% error bars, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.5))
    names = list(stats)
    for ax, m in zip(axes, METRICS, strict=True):
        means = [stats[p][m].mean for p in names]
        errs = [0 if math.isinf(stats[p][m].half_width) else stats[p][m].half_width for p in names]
        ax.bar(names, means, yerr=errs, capsize=6, color="#4c78a8")
        ax.set_title(m)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
