"""Quality-aware QoE (`--qoe vmaf`): sessions scored on the per-segment VMAF of what was played.

The model is Comyco's (Huang et al., "Comyco: Quality-Aware Adaptive Video Streaming via
Imitation Learning", ACM Multimedia 2019), a linear QoE fitted there to the Waterloo SQoE-III
ratings. The constants are copied from the authors' code, thu-media/Comyco `src/fixed_env.py`
(`get_optimal`) and `src/fixed_test.py` (the per-chunk reward), commit fc34f06: per segment n
with VMAF V_n and stall T_n (seconds),

    QoE_n = 0.8469011 V_n - 28.79591348 T_n + 0.29797156 [V_n - V_n-1]+
            - 1.06099887 [V_n - V_n-1]- - 2.661618558192494

The first segment has no switch term (Comyco sets V_0 = V_1). Comyco's simulator starts
with an empty buffer and charges the first segment's download as rebuffering, so startup
delay is charged as stall time here too. Pure functions over a session's records and the
title's per-segment VMAF table.
"""

from __future__ import annotations

from collections.abc import Sequence

from player_sim.qoe import SegmentRecord

ALPHA = 0.8469011
"""Weight of the segment's VMAF."""
BETA = 28.79591348
"""Penalty per second of stall."""
GAMMA = 0.29797156
"""Weight of a VMAF rise between consecutive segments."""
DELTA = 1.06099887
"""Penalty of a VMAF drop between consecutive segments."""
EPSILON = 2.661618558192494
"""Constant subtracted per segment (the fit's intercept)."""


def vmaf_qoe(records: Sequence[SegmentRecord], vmaf: Sequence[Sequence[float]],
             startup_s: float) -> dict[str, float]:
    """Score one session; `vmaf[level][segment]` is the title's per-segment VMAF."""
    played = [vmaf[r.level][min(r.segment, len(vmaf[r.level]) - 1)] for r in records]
    rises = sum(max(0.0, b - a) for a, b in zip(played, played[1:], strict=False))
    drops = sum(max(0.0, a - b) for a, b in zip(played, played[1:], strict=False))
    stall = sum(r.rebuffer_s for r in records[1:])
    startup = startup_s
    n = len(played)
    score = ALPHA * sum(played) - BETA * (stall + startup) + GAMMA * rises - DELTA * drops - EPSILON * n
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
