"""Quality-aware QoE (`--qoe vmaf`): sessions scored on the per-segment VMAF of what was played.

The weights are those of Comyco's QoE model (Huang et al., "Comyco: Quality-Aware Adaptive
Video Streaming via Imitation Learning", ACM Multimedia 2019), fitted there to the
Waterloo SQoE-III ratings, per segment n with VMAF V_n and stall T_n (seconds):

    QoE = ALPHA * V_n - BETA * T_n + GAMMA * [V_n - V_n-1]+ - DELTA * [V_n - V_n-1]-

Startup delay is charged as stall time (BETA per second).
Pure functions over a session's records and the title's per-segment VMAF table.
"""

from __future__ import annotations

from collections.abc import Sequence

from player_sim.qoe import SegmentRecord

ALPHA = 0.8469
"""Weight of the segment's VMAF."""
BETA = 28.7959
"""Penalty per second of stall."""
GAMMA = 0.2979
"""Weight of a VMAF rise between consecutive segments."""
DELTA = 1.0610
"""Penalty of a VMAF drop between consecutive segments."""


def vmaf_qoe(records: Sequence[SegmentRecord], vmaf: Sequence[Sequence[float]],
             startup_s: float) -> dict[str, float]:
    """Score one session; `vmaf[level][segment]` is the title's per-segment VMAF."""
    played = [vmaf[r.level][min(r.segment, len(vmaf[r.level]) - 1)] for r in records]
    rises = sum(max(0.0, b - a) for a, b in zip(played, played[1:], strict=False))
    drops = sum(max(0.0, a - b) for a, b in zip(played, played[1:], strict=False))
    stall = sum(r.rebuffer_s for r in records[1:])
    startup = startup_s
    score = ALPHA * sum(played) - BETA * (stall + startup) + GAMMA * rises - DELTA * drops
    n = len(played)
    return {
        "vmaf_qoe": score,
        "vmaf_qoe_per_chunk": score / n if n else 0.0,
        "vmaf_mean": sum(played) / n if n else 0.0,
        "vmaf_switch_mean": (rises + drops) / max(1, n - 1),
        "rebuffer_s": stall,
        "startup_s": startup,
    }


def summarise(sessions: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean of each key over every session of each algorithm."""
    return {name: {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
            for name, rows in sessions.items() if rows}


def table(summary: dict[str, dict[str, float]]) -> str:
    head = (f"{'algorithm':<16} {'VMAF QoE':>10} {'per chunk':>9} {'VMAF':>6} {'VMAF sw':>8} "
            f"{'rebuf s':>8} {'startup s':>9}")
    lines = [head, "-" * len(head)]
    for name, s in summary.items():
        lines.append(f"{name:<16} {s['vmaf_qoe']:>10.1f} {s['vmaf_qoe_per_chunk']:>9.2f} {s['vmaf_mean']:>6.1f} "
                     f"{s['vmaf_switch_mean']:>8.2f} {s['rebuffer_s']:>8.2f} {s['startup_s']:>9.2f}")
    return "\n".join(lines)
